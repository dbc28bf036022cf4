# One VPC, two subnets: the GKE workers and the Ray cluster. Neither has public node
# addresses except the Ray head (for `ray up` over SSH); Cloud NAT gives both the way
# out to package registries and image repositories.

resource "google_compute_network" "main" {
  name                    = "heysh"
  auto_create_subnetworks = false
  depends_on              = [google_project_service.apis]
}

resource "google_compute_subnetwork" "workers" {
  name                     = "heysh-workers"
  region                   = var.region
  network                  = google_compute_network.main.id
  ip_cidr_range            = var.workers_subnet_cidr
  private_ip_google_access = true

  secondary_ip_range {
    range_name    = "heysh-pods"
    ip_cidr_range = var.pods_cidr
  }

  secondary_ip_range {
    range_name    = "heysh-services"
    ip_cidr_range = var.services_cidr
  }
}

# cluster.yaml names this subnet and the head's address in it.
resource "google_compute_subnetwork" "ray" {
  name                     = "heysh-ray"
  region                   = var.region
  network                  = google_compute_network.main.id
  ip_cidr_range            = var.ray_subnet_cidr
  private_ip_google_access = true
}

resource "google_compute_address" "ray_head" {
  name         = "heysh-ray-head"
  region       = var.region
  subnetwork   = google_compute_subnetwork.ray.id
  address_type = "INTERNAL"
  address      = var.ray_head_ip
}

resource "google_compute_router" "main" {
  name    = "heysh"
  region  = var.region
  network = google_compute_network.main.id
}

resource "google_compute_router_nat" "main" {
  name                               = "heysh"
  router                             = google_compute_router.main.name
  region                             = var.region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "ALL_SUBNETWORKS_ALL_IP_RANGES"
}

# Private services access: Cloud SQL gets a private address inside this VPC.
resource "google_compute_global_address" "private_services" {
  name          = "heysh-private-services"
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  prefix_length = 20
  network       = google_compute_network.main.id
}

resource "google_service_networking_connection" "private_services" {
  network                 = google_compute_network.main.id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.private_services.name]
}

# Ray nodes talk to each other on many ports: the GCS (26379), the dashboard (28265),
# and object manager, node manager and worker ports that Ray picks at start-up. Only
# nodes tagged by cluster.yaml are on either side.
resource "google_compute_firewall" "ray_internal" {
  name        = "heysh-ray-internal"
  network     = google_compute_network.main.id
  direction   = "INGRESS"
  source_tags = ["heysh-ray"]
  target_tags = ["heysh-ray"]

  allow {
    protocol = "tcp"
    ports    = ["0-65535"]
  }

  allow {
    protocol = "udp"
    ports    = ["0-65535"]
  }
}

# The AI-queue workers call Serve on the head. GKE pods keep their own addresses
# inside the VPC, so both the node range and the pod range are admitted.
resource "google_compute_firewall" "serve_from_workers" {
  name          = "heysh-serve-from-workers"
  network       = google_compute_network.main.id
  direction     = "INGRESS"
  source_ranges = [var.workers_subnet_cidr, var.pods_cidr]
  target_tags   = ["heysh-ray-head"]

  allow {
    protocol = "tcp"
    ports    = [tostring(var.serve_port)]
  }
}

# `ray up` and `ray attach` reach the head over SSH; the dashboard is reached through
# that SSH session (`ray dashboard cluster.yaml`), never directly.
resource "google_compute_firewall" "ssh_to_ray_head" {
  name          = "heysh-ssh-to-ray-head"
  network       = google_compute_network.main.id
  direction     = "INGRESS"
  source_ranges = var.admin_cidrs
  target_tags   = ["heysh-ray-head"]

  allow {
    protocol = "tcp"
    ports    = ["22"]
  }
}

# A private cluster's control plane may reach nodes on 443 and 10250 only; KEDA's
# metrics API server (6443) and admission webhook (9443) need these ports too.
resource "google_compute_firewall" "gke_control_plane_to_keda" {
  name          = "heysh-gke-control-plane-to-keda"
  network       = google_compute_network.main.id
  direction     = "INGRESS"
  source_ranges = [var.master_cidr]
  target_tags   = ["heysh-gke"]

  allow {
    protocol = "tcp"
    ports    = ["6443", "9443"]
  }
}
