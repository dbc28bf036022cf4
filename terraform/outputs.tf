output "worker_queues" {
  description = "Task queues with their per-worker limits, replica bounds and node sizes."
  value       = local.worker_queues
}

output "gke_cluster" {
  description = "Name and zone of the workers' GKE cluster."
  value       = { name = google_container_cluster.workers.name, zone = var.zone }
}

output "kubectl_credentials_command" {
  description = "Points kubectl at the workers' cluster."
  value       = "gcloud container clusters get-credentials ${google_container_cluster.workers.name} --zone ${var.zone} --project ${var.project_id}"
}

output "worker_image" {
  description = "Image every worker Deployment runs; build and push it before the second apply."
  value       = local.worker_image
}

output "serve_url" {
  description = "Where the AI-queue workers reach Ray Serve: the Ray head's reserved address."
  value       = local.serve_url
}

output "ray_subnetwork" {
  description = "Subnet that cluster.yaml's node types must name."
  value       = google_compute_subnetwork.ray.name
}

output "ray_worker_service_account" {
  description = "Service account of cluster.yaml's T4 nodes."
  value       = google_service_account.ray_worker.email
}

output "blob_bucket" {
  description = "Bucket mounted as HEYSH_BLOB_ROOT in every worker."
  value       = google_storage_bucket.blobs.name
}

output "sql_connection_name" {
  description = "Cloud SQL instance connection name, for the Auth Proxy."
  value       = google_sql_database_instance.main.connection_name
}

output "db_password_secret" {
  description = "Secret Manager secret holding the database password of user heysh."
  value       = google_secret_manager_secret.db_password.id
}
