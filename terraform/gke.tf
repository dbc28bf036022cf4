# GKE cluster of the Temporal workers: a small system pool for GKE's and KEDA's own
# pods, and one tainted pool per task queue so that each queue's workers get nodes of
# the size the queue design asks for.

resource "google_service_account" "gke_nodes" {
  account_id   = "heysh-gke-nodes"
  display_name = "Hey.sh GKE nodes"
  depends_on   = [google_project_service.apis]
}

# Nodes write logs and metrics and pull images; the workloads use their own accounts
# through Workload Identity.
resource "google_project_iam_member" "gke_nodes" {
  for_each = toset(["roles/container.defaultNodeServiceAccount"])
  project  = var.project_id
  role     = each.value
  member   = google_service_account.gke_nodes.member
}

resource "google_artifact_registry_repository_iam_member" "gke_nodes_pull" {
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.reader"
  member     = google_service_account.gke_nodes.member
}

resource "google_container_cluster" "workers" {
  name     = "heysh-workers"
  location = var.zone

  network         = google_compute_network.main.id
  subnetwork      = google_compute_subnetwork.workers.id
  networking_mode = "VPC_NATIVE"

  ip_allocation_policy {
    cluster_secondary_range_name  = "heysh-pods"
    services_secondary_range_name = "heysh-services"
  }

  # Node pools are managed below; the default pool only exists while creating.
  remove_default_node_pool = true
  initial_node_count       = 1

  release_channel {
    channel = "REGULAR"
  }

  workload_identity_config {
    workload_pool = "${var.project_id}.svc.id.goog"
  }

  # Mounts the blob bucket into the worker pods.
  addons_config {
    gcs_fuse_csi_driver_config {
      enabled = true
    }
  }

  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = false
    master_ipv4_cidr_block  = var.master_cidr
  }

  master_authorized_networks_config {
    dynamic "cidr_blocks" {
      for_each = var.admin_cidrs
      content {
        cidr_block   = cidr_blocks.value
        display_name = "admin"
      }
    }
  }

  deletion_protection = var.deletion_protection
}

resource "google_container_node_pool" "system" {
  name       = "system"
  cluster    = google_container_cluster.workers.id
  location   = var.zone
  node_count = 1

  node_config {
    machine_type    = "e2-standard-2"
    disk_type       = "pd-balanced"
    disk_size_gb    = 30
    service_account = google_service_account.gke_nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    tags            = ["heysh-gke"]

    workload_metadata_config {
      mode = "GKE_METADATA"
    }
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  # Nodes register and report only once their account holds its role.
  depends_on = [google_project_iam_member.gke_nodes]
}

resource "google_container_node_pool" "workers" {
  for_each = local.worker_queues

  name               = "${each.key}-workers"
  cluster            = google_container_cluster.workers.id
  location           = var.zone
  initial_node_count = each.value.min_replicas

  # One worker per node: the cluster autoscaler follows the replicas KEDA asks for.
  autoscaling {
    min_node_count = each.value.min_replicas
    max_node_count = each.value.max_replicas
  }

  node_config {
    machine_type    = each.value.machine_type
    disk_type       = each.value.disk_type
    disk_size_gb    = each.value.disk_size_gb
    service_account = google_service_account.gke_nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    tags            = ["heysh-gke"]
    labels = {
      "heysh/queue" = each.key
    }

    # Only this queue's workers, which tolerate the taint, are scheduled here.
    taint {
      key    = "heysh/queue"
      value  = each.key
      effect = "NO_SCHEDULE"
    }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }

    shielded_instance_config {
      enable_secure_boot = true
    }
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  # Nodes register and report only once their account holds its role.
  depends_on = [google_project_iam_member.gke_nodes]
}
