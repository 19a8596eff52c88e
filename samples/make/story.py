"""One CI job's story, shared by every sample generator so the sources correlate.

Every generator under samples/make/ imports these constants: the same job id,
run id, OIDC subject, role session, certificate serial and artifact digest appear
in the Vault, CI, CloudTrail and attestation samples, so the bundle can rebuild
the chain of custody: trigger → OIDC token → AssumeRoleWithWebIdentity → Vault
login → PKI certificate → build/sign → policy gate → inference call → attestation
stored under Object Lock. Times are fixed (no clock reads).
"""

ACCOUNT_ID = "123456789012"
PARTITION = "aws-us-gov"
REGION = "us-gov-west-1"
ORG = "agency-gov"
REPOSITORY = "agency-gov/claims-model"
REPOSITORY_ID = 684213
WORKFLOW_PATH = ".github/workflows/deploy.yml"
REF = "refs/heads/main"
GIT_SHA = "9f2c4e1b7d3a5c8e0f6b2d4a1c3e5f7a9b0d2c4e"
RUN_ID = 9876543210
RUN_ATTEMPT = 1
JOB_ID = 31415926535  # GitHub workflow_job id; generic events use str(JOB_ID)
JOB_NAME = "build-sign-infer"
ACTOR = "deploy-bot"
ACTOR_EMAIL = "deploy-bot@agency.gov"
APPROVER = "jane.isso@agency.gov"
RUNNER_NAME = "govcloud-runner-07"
RUNNER_GROUP = "govcloud-boundary"
RUNNER_LABELS = ["self-hosted", "linux", "x64", "govcloud", "us-gov-west-1"]
OIDC_ISSUER = "https://token.actions.githubusercontent.com"
OIDC_AUDIENCE = "sts.amazonaws.com"
OIDC_SUBJECT = f"repo:{REPOSITORY}:environment:production"
ROLE_NAME = "ci-inference-only"
ROLE_ARN = f"arn:{PARTITION}:iam::{ACCOUNT_ID}:role/{ROLE_NAME}"
ROLE_SESSION_NAME = f"gha-{RUN_ID}-{JOB_ID}"
ASSUMED_ROLE_ARN = f"arn:{PARTITION}:sts::{ACCOUNT_ID}:assumed-role/{ROLE_NAME}/{ROLE_SESSION_NAME}"
TEMP_ACCESS_KEY_ID = "ASIAQEXAMPLE7CIJOB01"  # temporary (ASIA…) key of the role session
LONG_TERM_ACCESS_KEY_ID = "AKIAQEXAMPLELEGACY01"  # a long-term key: used only in the violation sample
VAULT_ROLE = "ci-inference"
VAULT_MOUNT = "jwt"
VAULT_ENTITY_ID = "7d2e3f4a-1b2c-4d5e-8f9a-0b1c2d3e4f5a"
VAULT_PKI_ROLE = "ci-job"
CERT_COMMON_NAME = f"ci-job-{JOB_ID}"
CERT_SERIAL = "3a:5f:91:0c:7e:22:4b:d8:19:6a:e0:f3:55:8c:01:b7:42:9d:6e:13"
CERT_TTL_SECONDS = 1800  # the job's length: 30 minutes
ARTIFACT_NAME = "registry.agency.gov/claims-model/infer"
ARTIFACT_DIGEST = "sha256:4c1f0e8b2a6d9c3e7f5a1b0d8e2c4f6a9b3d5e7f1a0c2e4b6d8f0a1c3e5b7d9f"
ATTESTATION_BUCKET = "agency-attestations"
ATTESTATION_KEY = f"attestations/{JOB_ID}.json"
CLOUDTRAIL_BUCKET = "agency-cloudtrail"
TRAIL_NAME = "org-trail"
AI_ENDPOINT = "fedramp-ai.gov/infer"
SIGNER = "ci@agency.gov"

# The job's timeline (UTC, fixed).
T_TRIGGER = "2026-11-20T14:00:00Z"  # merge → workflow_run requested / workflow_job queued
T_JOB_STARTED = "2026-11-20T14:00:20Z"
T_OIDC_ISSUED = "2026-11-20T14:00:25Z"  # token iat; exp = +5 minutes
T_ASSUME_ROLE = "2026-11-20T14:00:27Z"
T_VAULT_LOGIN = "2026-11-20T14:00:31Z"
T_PKI_ISSUE = "2026-11-20T14:00:33Z"
T_SECRET_READ = "2026-11-20T14:00:35Z"
T_BUILD_SIGNED = "2026-11-20T14:08:10Z"
T_POLICY_DECISION = "2026-11-20T14:08:40Z"
T_APPROVAL = "2026-11-20T14:09:00Z"
T_INFERENCE = "2026-11-20T14:10:05Z"
T_ATTESTATION_PUT = "2026-11-20T14:10:30Z"
T_JOB_COMPLETED = "2026-11-20T14:11:00Z"
