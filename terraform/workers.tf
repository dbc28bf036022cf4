# The Temporal workers on GKE: one Deployment per task queue running
# `heysh worker <tier>`, scaled by KEDA on that queue's backlog.
#
# The ScaledObjects need KEDA's CRDs at plan time, so the first apply is done in two
# steps (docs/deployment.md): `-target=helm_release.keda`, then everything.

resource "kubernetes_namespace_v1" "heysh" {
  metadata {
    name = "heysh"
  }
  depends_on = [google_container_node_pool.system]
}

resource "kubernetes_service_account_v1" "worker" {
  for_each = local.worker_queues

  metadata {
    name      = "${each.key}-worker"
    namespace = kubernetes_namespace_v1.heysh.metadata[0].name
    annotations = {
      "iam.gke.io/gcp-service-account" = google_service_account.worker[each.key].email
    }
  }
}

locals {
  # Each tier's settings (orchestration/config.py), spelled out per queue.
  worker_env = {
    ai = {
      HEYSH_TEMPORAL_ADDRESS   = var.temporal_address
      HEYSH_TEMPORAL_NAMESPACE = var.temporal_namespace
      HEYSH_BLOB_ROOT          = local.blob_root
      HEYSH_STATE_DIR          = "/tmp/heysh"
      HEYSH_SERVE_URL          = local.serve_url
    }
    storage = {
      HEYSH_TEMPORAL_ADDRESS   = var.temporal_address
      HEYSH_TEMPORAL_NAMESPACE = var.temporal_namespace
      HEYSH_BLOB_ROOT          = local.blob_root
      HEYSH_STATE_DIR          = "/tmp/heysh"
    }
    general = {
      HEYSH_TEMPORAL_ADDRESS   = var.temporal_address
      HEYSH_TEMPORAL_NAMESPACE = var.temporal_namespace
      HEYSH_BLOB_ROOT          = local.blob_root
      HEYSH_STATE_DIR          = "/tmp/heysh"
    }
  }

  # Settings that carry credentials go through a Kubernetes secret per tier. The
  # proxy beside each storage worker listens on the pod's loopback, hence 127.0.0.1;
  # the password is the generated one, never a value from a file.
  worker_secret_env = {
    ai = {}
    storage = {
      HEYSH_DATABASE_URL = "postgresql://${google_sql_user.heysh.name}:${random_password.db.result}@127.0.0.1:5432/${google_sql_database.heysh.name}"
    }
    general = var.webhook_url == null ? {} : { HEYSH_WEBHOOK_URL = var.webhook_url }
  }
}

resource "kubernetes_secret_v1" "worker" {
  for_each = local.worker_queues

  metadata {
    name      = "${each.key}-worker"
    namespace = kubernetes_namespace_v1.heysh.metadata[0].name
  }
  data = local.worker_secret_env[each.key]
}

resource "kubernetes_deployment_v1" "worker" {
  for_each = local.worker_queues

  metadata {
    name      = "${each.key}-worker"
    namespace = kubernetes_namespace_v1.heysh.metadata[0].name
    labels = {
      app           = "temporal-worker"
      "heysh/queue" = each.key
    }
  }

  spec {
    # KEDA owns the replica count after the first apply (see lifecycle below).
    replicas = each.value.min_replicas

    selector {
      match_labels = {
        app           = "temporal-worker"
        "heysh/queue" = each.key
      }
    }

    template {
      metadata {
        labels = {
          app           = "temporal-worker"
          "heysh/queue" = each.key
        }
        annotations = {
          "gke-gcsfuse/volumes" = "true"
        }
      }

      spec {
        service_account_name = kubernetes_service_account_v1.worker[each.key].metadata[0].name
        node_selector = {
          "heysh/queue" = each.key
        }
        # A worker stops polling on SIGTERM and gives running activities 20 s
        # (orchestration/worker.py); this leaves room for that.
        termination_grace_period_seconds = 40

        toleration {
          key      = "heysh/queue"
          operator = "Equal"
          value    = each.key
          effect   = "NoSchedule"
        }

        security_context {
          run_as_user     = local.worker_uid
          run_as_group    = local.worker_uid
          run_as_non_root = true
        }

        container {
          name    = "worker"
          image   = local.worker_image
          command = ["heysh", "worker", each.key]

          dynamic "env" {
            for_each = local.worker_env[each.key]
            content {
              name  = env.key
              value = env.value
            }
          }

          env_from {
            secret_ref {
              name = kubernetes_secret_v1.worker[each.key].metadata[0].name
            }
          }

          resources {
            requests = {
              cpu    = each.value.cpu_request
              memory = each.value.memory_request
            }
            limits = {
              memory = each.value.memory_limit
            }
          }

          volume_mount {
            name       = "blobs"
            mount_path = local.blob_root
          }
        }

        # The storage tier reaches Cloud SQL's private address through the Auth
        # Proxy, authorised by roles/cloudsql.client; it waits for the worker's own
        # graceful shutdown before closing connections.
        dynamic "container" {
          for_each = each.key == "storage" ? [google_sql_database_instance.main.connection_name] : []
          content {
            name  = "cloud-sql-proxy"
            image = var.cloud_sql_proxy_image
            args = [
              "--private-ip",
              "--port=5432",
              "--structured-logs",
              "--max-sigterm-delay=30s",
              container.value,
            ]

            resources {
              requests = {
                cpu    = "100m"
                memory = "128Mi"
              }
            }

            security_context {
              run_as_non_root = true
            }
          }
        }

        volume {
          name = "blobs"
          csi {
            driver = "gcsfuse.csi.storage.gke.io"
            volume_attributes = {
              bucketName   = google_storage_bucket.blobs.name
              mountOptions = "implicit-dirs,uid=${local.worker_uid},gid=${local.worker_uid}"
            }
          }
        }
      }
    }
  }

  lifecycle {
    ignore_changes = [spec[0].replicas]
  }

  depends_on = [
    google_container_node_pool.workers,
    google_artifact_registry_repository_iam_member.gke_nodes_pull,
    google_storage_bucket_iam_member.worker_blobs,
    google_service_account_iam_member.worker_workload_identity,
  ]
}

resource "helm_release" "keda" {
  name             = "keda"
  repository       = "https://kedacore.github.io/charts"
  chart            = "keda"
  version          = var.keda_chart_version
  namespace        = "keda"
  create_namespace = true
  depends_on       = [google_container_node_pool.system]
}

# Scale each queue's workers on its Temporal backlog rather than on CPU: a backlog
# larger than what one worker runs at once (its max concurrent activities) asks for
# another replica, within the capacity table's bounds.
resource "kubernetes_manifest" "worker_scaler" {
  for_each = local.worker_queues

  manifest = {
    apiVersion = "keda.sh/v1alpha1"
    kind       = "ScaledObject"
    metadata = {
      name      = "${each.key}-worker"
      namespace = kubernetes_namespace_v1.heysh.metadata[0].name
    }
    spec = {
      scaleTargetRef = {
        name = kubernetes_deployment_v1.worker[each.key].metadata[0].name
      }
      minReplicaCount = each.value.min_replicas
      maxReplicaCount = each.value.max_replicas
      pollingInterval = 15
      # Scale down slowly: a worker that leaves hands its sticky workflows back.
      cooldownPeriod = 300
      triggers = [
        {
          type = "temporal"
          metadata = {
            endpoint                  = var.temporal_address
            namespace                 = var.temporal_namespace
            taskQueue                 = each.value.task_queue
            queueTypes                = each.value.queue_types
            targetQueueSize           = tostring(each.value.max_concurrent_activities)
            activationTargetQueueSize = "0"
          }
        },
      ]
    }
  }

  depends_on = [helm_release.keda]
}
