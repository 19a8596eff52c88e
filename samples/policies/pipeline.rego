# The seed's example pipeline gate (PIPELINE-PATTERNS.md, pattern 5), re-evaluated by
# fedledger on the evidence it collected: one input per CI job.
# controls: CM-3, CM-5, SI-7, AC-6
# inputs: job
package pipeline

allow {
  input.artifact.signed == true
  input.runner.region == "us-gov-west-1"
  input.credentials.type == "ephemeral"
}
