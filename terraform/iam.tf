# One Google service account per worker tier, bound to that tier's Kubernetes service
# account through Workload Identity, each with only what its activities touch.

resource "google_service_account" "worker" {
  for_each     = local.worker_queues
  account_id   = "heysh-${each.key}-worker"
  display_name = "Hey.sh ${each.value.task_queue} worker"
  depends_on   = [google_project_service.apis]
}

# Every tier reads and writes blobs, on this bucket only.
resource "google_storage_bucket_iam_member" "worker_blobs" {
  for_each = local.worker_queues
  bucket   = google_storage_bucket.blobs.name
  role     = "roles/storage.objectUser"
  member   = google_service_account.worker[each.key].member
}

# Only the storage tier talks to PostgreSQL, through the Cloud SQL Auth Proxy.
resource "google_project_iam_member" "storage_worker_sql" {
  project = var.project_id
  role    = "roles/cloudsql.client"
  member  = google_service_account.worker["storage"].member
}

resource "google_service_account_iam_member" "worker_workload_identity" {
  for_each           = local.worker_queues
  service_account_id = google_service_account.worker[each.key].name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[heysh/${each.key}-worker]"
}

# The T4 nodes of cluster.yaml run under this account instead of the project's
# default compute account; they only install packages and run models.
resource "google_service_account" "ray_worker" {
  account_id   = "heysh-ray-worker"
  display_name = "Hey.sh Ray GPU workers"
  depends_on   = [google_project_service.apis]
}

resource "google_project_iam_member" "ray_worker" {
  for_each = toset(["roles/logging.logWriter", "roles/monitoring.metricWriter"])
  project  = var.project_id
  role     = each.value
  member   = google_service_account.ray_worker.member
}
