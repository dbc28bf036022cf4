# GCP infrastructure for the Temporal workers and the data tier.
#
# Minimal for now: it records the queue design (names, per-worker limits and replica
# bounds from the capacity table) that the worker deployments are to be sized from.
# The network, cluster, Cloud SQL, bucket and service accounts are still to come.

terraform {
  required_version = ">= 1.0"
}

variable "project_id" {
  description = "GCP project that hosts the workers and the data tier."
  type        = string
}

variable "region" {
  description = "GCP region."
  type        = string
  default     = "us-central1"
}

locals {
  worker_queues = {
    ai = {
      task_queue                    = "ai-processing-queue"
      max_concurrent_activities     = 5
      max_concurrent_workflow_tasks = 10
      min_replicas                  = 1
      max_replicas                  = 2
    }
    storage = {
      task_queue                    = "storage-queue"
      max_concurrent_activities     = 20
      max_concurrent_workflow_tasks = 20
      min_replicas                  = 2
      max_replicas                  = 4
    }
    general = {
      task_queue                    = "general-queue"
      max_concurrent_activities     = 50
      max_concurrent_workflow_tasks = 50
      min_replicas                  = 3
      max_replicas                  = 5
    }
  }
}

output "worker_queues" {
  description = "Task queues and the replica bounds their worker deployments use."
  value       = local.worker_queues
}
