"""AI tier: the Ray Serve application and the thin activities of the AI queue.

Only the Serve modules (`embedder`, `summarizer`, `app`) import torch and the models;
the AI-queue worker imports `activities`, `inference_client`, `chunking` and
`keyphrases`, which need nothing but HTTP and numpy.
"""
