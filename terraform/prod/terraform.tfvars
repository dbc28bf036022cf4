# Production values for `terraform apply -var-file=prod/terraform.tfvars`, run from
# terraform/. An example: replace the project, the admin range and the image tag.
# No secrets belong here; the database password is generated and kept in Secret
# Manager, and a webhook URL, if any, is passed with TF_VAR_webhook_url.

project_id = "my-heysh-project"
region     = "us-central1"
zone       = "us-central1-a"

# Where kubectl and `ray up` run from.
admin_cidrs = ["203.0.113.0/24"]

# A Temporal frontend inside the VPC, for example the Temporal Helm chart installed in
# the workers' cluster.
temporal_address   = "temporal-frontend.temporal.svc.cluster.local:7233"
temporal_namespace = "default"

worker_image_tag = "0.1.0"

db_tier              = "db-custom-2-8192"
db_high_availability = true
