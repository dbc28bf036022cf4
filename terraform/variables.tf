variable "project_id" {
  description = "GCP project that hosts the workers, the data tier and the Ray cluster."
  type        = string
}

variable "region" {
  description = "GCP region of every regional resource. cluster.yaml names the same region."
  type        = string
  default     = "us-central1"
}

variable "zone" {
  description = "Zone of the GKE cluster and its node pools. cluster.yaml puts the Ray nodes in the same zone."
  type        = string
  default     = "us-central1-a"
}

variable "admin_cidrs" {
  description = "Address ranges allowed to reach the GKE control plane and to SSH into the Ray head (where `ray up` and kubectl run)."
  type        = list(string)
}

variable "workers_subnet_cidr" {
  description = "Primary range of the subnet of the GKE nodes."
  type        = string
  default     = "10.10.0.0/20"
}

variable "pods_cidr" {
  description = "Secondary range for GKE pod addresses."
  type        = string
  default     = "10.12.0.0/16"
}

variable "services_cidr" {
  description = "Secondary range for GKE service addresses."
  type        = string
  default     = "10.16.0.0/20"
}

variable "master_cidr" {
  description = "The /28 range of the private GKE control plane."
  type        = string
  default     = "172.16.0.0/28"
}

variable "ray_subnet_cidr" {
  description = "Range of the subnet of the Ray nodes started by `ray up cluster.yaml`."
  type        = string
  default     = "10.20.0.0/24"
}

variable "ray_head_ip" {
  description = "Internal address reserved for the Ray head; cluster.yaml pins the head to it, and the AI-queue workers call Serve there."
  type        = string
  default     = "10.20.0.10"
}

variable "serve_port" {
  description = "Port of Ray Serve's HTTP proxy on the Ray head (the `serve start --http-port` in cluster.yaml)."
  type        = number
  default     = 8000
}

variable "temporal_address" {
  description = "host:port of the Temporal frontend, reachable from the GKE pods without TLS (the workers and KEDA connect in plain gRPC)."
  type        = string
}

variable "temporal_namespace" {
  description = "Temporal namespace the workflows run in."
  type        = string
  default     = "default"
}

variable "worker_image_tag" {
  description = "Tag of the worker image (docker/worker.Dockerfile) pushed to the Artifact Registry repository this configuration creates."
  type        = string
}

variable "keda_chart_version" {
  description = "Version of the KEDA Helm chart; the Temporal scaler needs KEDA 2.17 or later."
  type        = string
  default     = "2.18.0"
}

variable "cloud_sql_proxy_image" {
  description = "Cloud SQL Auth Proxy image run beside each storage worker."
  type        = string
  default     = "gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.14.3"
}

variable "db_version" {
  description = "Cloud SQL PostgreSQL major version (pgvector 0.8 is available from POSTGRES_13 on)."
  type        = string
  default     = "POSTGRES_17"
}

variable "db_tier" {
  description = "Cloud SQL machine tier of the PostgreSQL instance."
  type        = string
  default     = "db-custom-2-8192"
}

variable "db_disk_size_gb" {
  description = "Initial disk size of the PostgreSQL instance; it grows automatically."
  type        = number
  default     = 50
}

variable "db_high_availability" {
  description = "Whether the PostgreSQL instance has a standby in a second zone (REGIONAL availability)."
  type        = bool
  default     = true
}

variable "webhook_url" {
  description = "URL the general worker POSTs finished and failed documents to; unset sends none. Sensitive because such URLs often carry a token."
  type        = string
  default     = null
  sensitive   = true
}

variable "deletion_protection" {
  description = "Protect the GKE cluster and the PostgreSQL instance from `terraform destroy`."
  type        = bool
  default     = true
}
