"""The benchmark: how close each layer of the stack gets to the embedding model itself.

`python -m benchmarks` (or `make bench`) measures, in one run on one machine, the model
called in-process, the Serve route batched and unbatched, the AI path through Temporal,
the seed design (the model inside the activity), the whole pipeline, single-document
latency, and memory and cold start of the embedded stack.
"""
