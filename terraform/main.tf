# GCP infrastructure for Hey.sh: the Temporal workers (GKE), the data tier (Cloud SQL
# PostgreSQL with pgvector, a GCS bucket for blobs) and the network the Ray cluster of
# cluster.yaml joins. Walk-through: docs/deployment.md.
#
# Not created here: the Temporal service (var.temporal_address points at it) and the
# Ray nodes themselves, which `ray up cluster.yaml` starts inside the network below.

locals {
  # The queue design, one entry per task queue. Names and per-worker limits mirror
  # orchestration/queues.py; replica bounds are the capacity table's. Each worker gets
  # a node of its own, sized to the design's per-worker minimum, so the node pool's
  # bounds equal the replica bounds.
  worker_queues = {
    # A thin HTTP client of Ray Serve: the models and their GPUs live in the Ray
    # cluster of cluster.yaml, so this pool has no accelerators.
    ai = {
      task_queue                    = "ai-processing-queue"
      max_concurrent_activities     = 5
      max_concurrent_workflow_tasks = 10
      min_replicas                  = 1
      max_replicas                  = 2
      machine_type                  = "e2-standard-4"
      disk_type                     = "pd-ssd"
      disk_size_gb                  = 50
      cpu_request                   = "2500m"
      memory_request                = "10Gi"
      memory_limit                  = "12Gi"
      queue_types                   = "activity"
    }
    storage = {
      task_queue                    = "storage-queue"
      max_concurrent_activities     = 20
      max_concurrent_workflow_tasks = 20
      min_replicas                  = 2
      max_replicas                  = 4
      machine_type                  = "e2-standard-2"
      disk_type                     = "pd-ssd"
      disk_size_gb                  = 200
      cpu_request                   = "1000m"
      memory_request                = "4Gi"
      memory_limit                  = "5Gi"
      queue_types                   = "activity"
    }
    # e2-standard-2 rather than the shared-core e2-medium: beside the worker, a node
    # runs the Cloud Storage FUSE sidecar and GKE's own agents, which leave too
    # little of an e2-medium's single allocatable core.
    general = {
      task_queue                    = "general-queue"
      max_concurrent_activities     = 50
      max_concurrent_workflow_tasks = 50
      min_replicas                  = 3
      max_replicas                  = 5
      machine_type                  = "e2-standard-2"
      disk_type                     = "pd-balanced"
      disk_size_gb                  = 20
      cpu_request                   = "500m"
      memory_request                = "2Gi"
      memory_limit                  = "4Gi"
      queue_types                   = "workflow,activity"
    }
  }

  # Where every worker sees the blob bucket. Blob URIs are file:// paths, so all
  # workers must mount it at the same place.
  blob_root = "/var/lib/heysh/blobs"

  # The worker image runs as this user; the bucket mount is owned by it.
  worker_uid = 10001

  serve_url    = "http://${var.ray_head_ip}:${var.serve_port}"
  worker_image = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}/worker:${var.worker_image_tag}"
}

resource "google_project_service" "apis" {
  for_each = toset([
    "artifactregistry.googleapis.com",
    "compute.googleapis.com",
    "container.googleapis.com",
    "iam.googleapis.com",
    "secretmanager.googleapis.com",
    "servicenetworking.googleapis.com",
    "sqladmin.googleapis.com",
    "storage.googleapis.com",
  ])
  service = each.value
  # Turning an API off on destroy would break anything else in the project using it.
  disable_on_destroy = false
}

resource "google_artifact_registry_repository" "images" {
  location      = var.region
  repository_id = "heysh"
  format        = "DOCKER"
  description   = "Hey.sh worker images."
  depends_on    = [google_project_service.apis]
}
