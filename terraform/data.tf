# The data tier: PostgreSQL with pgvector on Cloud SQL, and a bucket for blobs.

resource "google_sql_database_instance" "main" {
  name             = "heysh"
  region           = var.region
  database_version = var.db_version

  settings {
    # PostgreSQL 16 and later default to Enterprise Plus, whose tiers differ.
    edition           = "ENTERPRISE"
    tier              = var.db_tier
    availability_type = var.db_high_availability ? "REGIONAL" : "ZONAL"
    disk_type         = "PD_SSD"
    disk_size         = var.db_disk_size_gb
    disk_autoresize   = true

    # Private address only; the storage workers connect through the Cloud SQL Auth
    # Proxy, which encrypts, so unencrypted connections are refused outright.
    ip_configuration {
      ipv4_enabled    = false
      private_network = google_compute_network.main.id
      ssl_mode        = "ENCRYPTED_ONLY"
    }

    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
    }

    # pgvector needs no database flag on Cloud SQL: the storage tier's schema runs
    # `CREATE EXTENSION IF NOT EXISTS vector` as the built-in user below, which is a
    # member of cloudsqlsuperuser.
  }

  deletion_protection = var.deletion_protection
  depends_on          = [google_service_networking_connection.private_services]
}

resource "google_sql_database" "heysh" {
  name     = "heysh"
  instance = google_sql_database_instance.main.name
}

# The password is generated here, never typed: Secret Manager holds it for operators,
# and the storage workers get it through a Kubernetes secret (workers.tf). It is in
# the Terraform state, which therefore belongs in a private, encrypted backend.
resource "random_password" "db" {
  length  = 32
  special = false
}

resource "google_sql_user" "heysh" {
  name     = "heysh"
  instance = google_sql_database_instance.main.name
  password = random_password.db.result
}

resource "google_secret_manager_secret" "db_password" {
  secret_id = "heysh-db-password"

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "db_password" {
  secret      = google_secret_manager_secret.db_password.id
  secret_data = random_password.db.result
}

# Blobs: document bytes, extracted text and embeddings, mounted into every worker with
# Cloud Storage FUSE. A hierarchical namespace makes renames atomic, which the blob
# store relies on when it writes a file under a temporary name first.
resource "google_storage_bucket" "blobs" {
  name                        = "${var.project_id}-heysh-blobs"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  hierarchical_namespace {
    enabled = true
  }

  depends_on = [google_project_service.apis]
}
