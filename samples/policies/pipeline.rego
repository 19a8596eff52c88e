# The seed's example pipeline gate (PIPELINE-PATTERNS.md, pattern 5), re-evaluated by
# fedledger on the evidence it collected: one input per CI job.
# controls: CM-3, CM-5, SI-7, AC-6
# inputs: job
package pipeline

allow {
  artifact_ok
  input.runner.region == "us-gov-west-1"
  credentials_ok
}

artifact_ok {
  input.artifact.signed == true
}

# A job still running at as-of that has not reached its attestation step yet is not denied for
# it (docs/evaluation.md, Jobs in progress at as_of), unless an attestation of it already failed.
artifact_ok {
  input.custody_steps.attestation_stored.not_reached == true
  not bad_attestation
}

bad_attestation {
  event := input.events[_]
  startswith(event.kind, "attestation.")
  event.kind != "attestation.signed"
}

credentials_ok {
  input.credentials.type == "ephemeral"
}

# Likewise before its role assumption, as long as no credentials at all were seen (a long-term key is
# never waited for, nor is a job that already called AWS with credentials from anywhere else).
credentials_ok {
  input.credentials.type == "unknown"
  input.custody_steps.role_assumption.not_reached == true
  count(input.credentials.access_key_classes) == 0
  not called_aws
}

called_aws {
  some kind
  input.counts[kind] > 0
  startswith(kind, "aws.")
}
