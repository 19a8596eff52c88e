"""User policies in Rego, evaluated in-process with regopy against the collected evidence.

Each ``.rego`` file in the policies folder is one policy, compiled in its own
interpreter. A policy file declares:

* ``package <name>`` (required);
* the controls it speaks to, as a comment line ``# controls: CM-3, SI-7`` (any
  case; ``AC-2(4)`` or ``ac-2.4``), or else a rule ``controls`` holding a list or set
  of control ids. A policy that declares none is a usage error;
* optionally which inputs it judges: ``# inputs: job`` (default), ``# inputs: artifact``
  or ``# inputs: job, artifact``;
* a decision: rule ``allow`` (true passes; false or undefined fails, as in OPA) and/or
  rule ``deny`` (a set or list of messages; non-empty fails, conftest style).

Input documents (``input``):

* per CI job: ``{"kind": "job", "job": {id, run_id, repository, in_progress}, "in_progress":
  {as_of, started, allowed_seconds, allowed_from} (null unless the job was still running at as_of:
  no end event, started within its allowed length; null is a value in Rego, so test
  ``input.job.in_progress == false``, not ``not input.in_progress``), "runner": {region, labels, name, unsigned}
  (``unsigned``: null, or ``{region, labels, seqs}`` when only webhook payloads collected without
  their signature while a secret was configured say where the runner was; their region is then not
  ``region``, which is null), "credentials": {type: "ephemeral" | "long-term" | "unknown",
  access_key_classes}, "artifact": {digest, digests, signed, attested},
  "vault": {secret_reads, token_renewals, unpaired_secret_reads, unpaired_token_renewals,
  unanswered_secret_reads, unanswered_token_renewals} (the counts include the unpaired ones, whose
  requester is unverified, and the unanswered ones, requests whose response line was never logged: a
  limit is not escaped by them),
  "custody": {step: present…},
  "custody_steps": {step: {present, not_reached, seqs, detail, other_builds, unsigned, unpaired}}
  (``not_reached``: the job is in progress at as_of and has not got to this step yet, so it is not
  missing; a policy demanding every step asks for ``present or not_reached``; ``unsigned`` and
  ``unpaired``: entries seen for the step but not counted, unsigned webhook payloads and unpaired
  Vault responses),
  "custody_shared": {step: {run_id, repository, attempt, jobs, seqs}} (steps that rest on
  events the jobs of one run share, e.g. a matrix build's role assumption: present in
  ``custody``, and ``credentials.type`` is ``ephemeral`` with ``shared_within_run`` true
  when such a shared web-identity role assumption is all that shows it),
  "counts": {kind: n}, "events": [{seq, kind, time, action, resource, status,
  correlation, attrs, unverified}…]}`` — ``events`` holds the job's non-bulk events (logins,
  certificates, tokens, policy decisions, inference calls, attestations…); bulk
  kinds (API calls, secret reads) appear only in ``counts``. ``unverified`` is ``"unpaired"`` (a
  Vault response whose request line was never logged), ``"unsigned"`` (a GitHub/GitLab payload
  collected without its signature while a webhook secret was configured) or null, as the evidence
  table's ``unverified`` column (:func:`bundler.evidence_table.unverified_claim`).
* per artifact: ``{"kind": "artifact", "artifact": {digest, signed, attested,
  attestations: [{seq, kind, signer, predicate_type, object_lock_mode,
  retain_until}]}, "jobs": [job ids that built or used it]}``.

``signed`` and ``attested`` (job and artifact inputs alike) are true only when an
``attestation.signed`` (a verified signature) names the digest; unsigned and invalid
attestations are listed with their ``kind`` but never make them true.

A policy that fails to compile raises :class:`collector.errors.UsageError` (exit 2),
never a pass; so does one that calls a builtin whose answer is not a function of the
input (:data:`REFUSED_BUILTINS`, and the network builtins such as ``http.send``, which
regopy evaluates as undefined): evaluation runs offline and an assessor's rerun must give
the same findings. An evaluation error on one input is a finding on that input (fail
closed). Each policy yields one :class:`~bundler.model.CheckResult` of kind
``policy`` (id ``policy:<file stem>``).
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regopy import Input, Interpreter

from bundler.catalog import normalize_control_id
from bundler.custody import attestation_digests
from bundler.evidence_table import unverified_claim
from bundler.model import NOT_ASSESSED, NOT_SATISFIED, SATISFIED, CheckResult, CustodyStep, CustodyStory, Finding, \
    Observation
from collector.errors import UsageError

if TYPE_CHECKING:
    from bundler.evaluate import Context, JobFacts

_PACKAGE = re.compile(r"^\s*package\s+([A-Za-z_][A-Za-z0-9_.]*)\s*$", re.MULTILINE)
_CONTROLS_COMMENT = re.compile(r"^\s*#\s*controls\s*:\s*(.+?)\s*$", re.MULTILINE | re.IGNORECASE)
_INPUTS_COMMENT = re.compile(r"^\s*#\s*inputs\s*:\s*(.+?)\s*$", re.MULTILINE | re.IGNORECASE)
_DECISION_RULE = re.compile(r"^\s*(default\s+)?(allow|deny)\b", re.MULTILINE)
_CONTROL_TOKEN = re.compile(r"^[A-Za-z]{2}-\d+(\(\d+\)|\.\d+)?$")
INPUT_KINDS = ("job", "artifact")
# Builtins regopy implements whose result is not a function of the input document.
REFUSED_BUILTINS = {
    "time.now_ns": "it reads the clock",
    "rand.intn": "it is random",
    "uuid.rfc4122": "it is random",
    "opa.runtime": "it reads the host's environment",
}
# Network builtins (http.send, net.lookup_ip_addr): regopy declares them and evaluates them as undefined.
_NETWORK_BUILTINS = ("http.", "net.lookup")


@dataclass(frozen=True)
class Policy:
    """A compiled policy: its name (file stem), file, package, controls and input kinds."""

    name: str
    path: str
    package: str
    controls: tuple[str, ...]
    inputs: tuple[str, ...]
    text: str

    def interpreter(self) -> Interpreter:
        rego = Interpreter()
        rego.add_module(Path(self.path).name, self.text)
        return rego


@contextmanager
def _native_output_captured() -> Iterator[list[str]]:
    """regopy's native code prints compile errors on file descriptor 1; results own stdout, so
    catch that text (it becomes the error message) instead of letting it reach the output."""
    captured: list[str] = []
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no usable fd 1 (embedded use): nothing to protect
        yield captured
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        try:
            yield captured
        finally:
            _flush_c_stdio()
            os.dup2(saved, 1)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read(64 * 1024).decode("utf-8", "replace"))


def _flush_c_stdio() -> None:
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass


def _readable(native: str) -> str:
    """'Invalid boolean operator at broken.rego:3:17' from regopy's printed error block."""
    lines = [line.strip() for line in native.splitlines() if line.strip()]
    lines = [line for line in lines if line not in ("Errors:",) and not set(line) <= {"~", "-", " "}]
    messages = []
    for index, line in enumerate(lines):
        if line.startswith("-- ") and index > 0:
            messages.append(f"{lines[index - 1]} at {line[3:]}")
    return "; ".join(messages[:3])


def _compile_error(path: Path, detail: str) -> UsageError:
    return UsageError(f"policy does not compile: {detail}", location=str(path))


def load_policy(path: Path | str) -> Policy:
    """Read and compile one ``.rego`` file; a usage error if it does not compile or declares no controls."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read policy: {exc}", location=str(path)) from None
    match = _PACKAGE.search(text)
    if not match:
        raise _compile_error(path, "no 'package' line")
    package = match.group(1)
    if not _DECISION_RULE.search(text):
        raise UsageError("policy defines neither an 'allow' nor a 'deny' rule", location=str(path))
    rego = Interpreter()
    failure: str | None = None
    with _native_output_captured() as native:
        try:
            rego.add_module(path.name, text)
            output = rego.query(f"data.{package}")
            if not output.ok():
                failure = " ".join(str(output).split())[:300] or "error"
        except Exception as exc:  # regopy raises RegoError (a plain Exception) with the parser's message
            failure = " ".join(str(exc).split())[:300] or type(exc).__name__
    if failure is not None:
        raise _compile_error(path, _readable("".join(native)) or failure)
    _refuse_builtins(path, text)
    controls = _declared_controls(path, text, rego, package)
    inputs_match = _INPUTS_COMMENT.search(text)
    inputs: tuple[str, ...] = ("job",)
    if inputs_match:
        inputs = tuple(dict.fromkeys(x.strip().lower() for x in inputs_match.group(1).split(",") if x.strip()))
        unknown = [x for x in inputs if x not in INPUT_KINDS]
        if unknown or not inputs:
            raise UsageError(f"'# inputs:' must list job and/or artifact, not {', '.join(unknown) or 'nothing'}",
                             location=str(path))
    return Policy(path.stem, str(path), package, controls, inputs, text)


_CALL = re.compile(r"(?<![\w.])([A-Za-z_]\w*(?:\s*\.\s*[A-Za-z_]\w*)+)\s*\(")
_LEXEME = re.compile(r'#[^\n]*|"(?:\\.|[^"\\\n])*"|`[^`]*`', re.DOTALL)


def _code_only(text: str) -> str:
    """*text* with comments and string contents blanked (newlines kept, so lines still count)."""
    return _LEXEME.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def _refuse_builtins(path: Path, text: str) -> None:
    """A usage error naming the first call (by line) of a builtin whose answer is not a function
    of the input: one in :data:`REFUSED_BUILTINS`, or a network builtin, which regopy declares
    but evaluates as undefined (so a ``deny`` built on it would quietly never fire)."""
    code = _code_only(text)
    for match in _CALL.finditer(code):
        name = re.sub(r"\s+", "", match.group(1))
        if name in REFUSED_BUILTINS:
            reason = REFUSED_BUILTINS[name]
        elif name.startswith(_NETWORK_BUILTINS):
            reason = "it reaches the network (regopy evaluates it as undefined)"
        else:
            continue
        line = code.count("\n", 0, match.start()) + 1
        raise UsageError(f"{name} is not allowed: {reason}; policies are evaluated offline and must give the same "
                         "result on every run (docs/evaluation.md)", location=f"{path}:{line}")


def _declared_controls(path: Path, text: str, rego: Interpreter, package: str) -> tuple[str, ...]:
    match = _CONTROLS_COMMENT.search(text)
    if match:
        tokens = [t.strip() for t in re.split(r"[,\s]+", match.group(1)) if t.strip()]
    else:
        output = rego.query(f"data.{package}.controls")
        value = _json(output) if output.ok() else None
        if isinstance(value, dict):
            value = [k for k, v in value.items() if v]
        tokens = [str(t) for t in value] if isinstance(value, list) else []
    bad = [t for t in tokens if not _CONTROL_TOKEN.match(t)]
    if bad or not tokens:
        raise UsageError(
            "policy must declare the controls it speaks to ('# controls: CM-3, SI-7' or a 'controls' rule)"
            + (f"; not control ids: {', '.join(bad)}" if bad else ""),
            location=str(path),
        )
    return tuple(dict.fromkeys(normalize_control_id(t) for t in tokens))


def load_policies(folder: Path | str) -> tuple[Policy, ...]:
    """Every ``*.rego`` file in *folder* (sorted by name), compiled."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError("policies folder not found", location=str(folder))
    return tuple(load_policy(p) for p in sorted(folder.glob("*.rego")))


def _json(output: Any) -> Any:
    """The value of the first expression of a regopy output, or None when undefined."""
    text = str(output).strip()
    if not text or text == "undefined":
        return None
    doc = json.loads(text)
    expressions = doc.get("expressions") if isinstance(doc, dict) else None
    return expressions[0] if expressions else None


# -- input documents -----------------------------------------------------------------------


def _compact(event: Mapping[str, Any], seq: int) -> dict[str, Any]:
    """One event as a policy reads it; ``unverified`` says, as the evidence table's column of that name
    does, whether nobody verified what it claims: ``"unpaired"`` (a Vault response whose request line was
    never logged), ``"unsigned"`` (a GitHub/GitLab payload collected without its signature while a webhook
    secret was configured), else null."""
    outcome = event.get("outcome")
    outcome = outcome if isinstance(outcome, Mapping) else {}
    attrs = event.get("attrs")
    kind = event.get("kind")
    return {
        "seq": seq,
        "kind": event.get("kind"),
        "time": event.get("time"),
        "action": event.get("action"),
        "resource": event.get("resource"),
        "status": outcome.get("status"),
        "correlation": dict(event.get("correlation") or {}),
        "attrs": dict(attrs or {}),
        "unverified": unverified_claim(attrs, kind) if isinstance(attrs, Mapping) and attrs else None,
    }


def _shared_steps(ctx: Context, job: JobFacts) -> tuple[dict[str, dict[str, Any]], bool]:
    """step → the run whose jobs share that step's events with this job (a matrix build's role assumption
    and Vault login): ``{run_id, repository, attempt, jobs, seqs}``; and whether one of the shared events
    is a successful web-identity role assumption."""
    from bundler.custody import STEPS

    step_of = {kind: name for name, _, kinds in STEPS for kind in kinds}
    shared: dict[str, dict[str, Any]] = {}
    assumed = False
    for row in ctx.shared_rows.get(job.job_id, ()):
        share = ctx.within_run[row]
        name = step_of.get(str(ctx.frame.at[row, "kind"]))
        if name is None:
            continue
        item = shared.setdefault(name, {"run_id": share.run_id, "repository": share.repository,
                                        "attempt": share.attempt, "jobs": list(share.jobs), "seqs": []})
        item["seqs"].append(int(ctx.frame.at[row, "seq"]))
        assumed = assumed or (name == "role_assumption" and ctx.frame.at[row, "status"] == "success")
    return shared, assumed


def job_input(ctx: Context, job: JobFacts, story: CustodyStory | None) -> dict[str, Any]:
    """The input document for one CI job."""
    from bundler.evaluate import label_region

    credentials = "unknown"
    shared, shared_assumption = _shared_steps(ctx, job)
    if job.long_term_seqs:
        credentials = "long-term"
    elif job.web_identity_seqs:
        credentials = "ephemeral"
    elif shared_assumption:  # every web-identity role assumption of its run is one that may be its own
        credentials = "ephemeral"
    digests = list(job.artifact_digests)
    signed = bool(digests) and all(d in ctx.attestations_by_digest for d in digests)
    events = [_compact(ctx.table.events[s], s) for s in job.seqs if s in ctx.table.events]
    running = ctx.in_flight.get(job.job_id)
    return {
        "kind": "job",
        "job": {"id": job.job_id, "run_id": job.run_id, "repository": job.repository,
                "in_progress": running is not None},
        "in_progress": None if running is None else {
            "as_of": running.as_of, "started": running.started, "allowed_seconds": running.length_seconds,
            "allowed_from": running.length_from},
        "runner": {"region": job.runner_region or label_region(job.runner_labels), "labels": list(job.runner_labels),
                   "name": job.runner_name,
                   "unsigned": {"region": job.unsigned_region, "labels": list(job.unsigned_labels),
                                "seqs": list(job.unsigned_seqs)} if job.unsigned_region else None},
        "credentials": {"type": credentials, "access_key_classes": list(job.access_key_classes),
                        "shared_within_run": bool(credentials == "ephemeral" and not job.web_identity_seqs)},
        "artifact": {"digest": digests[0] if digests else None, "digests": digests, "signed": signed,
                     "attested": signed},
        "vault": {"secret_reads": len(job.secret_read_seqs) + len(job.unpaired_read_seqs)
                  + len(job.unanswered_read_seqs),
                  "token_renewals": len(job.token_renew_seqs) + len(job.unpaired_renew_seqs)
                  + len(job.unanswered_renew_seqs),
                  "unpaired_secret_reads": len(job.unpaired_read_seqs),
                  "unpaired_token_renewals": len(job.unpaired_renew_seqs),
                  "unanswered_secret_reads": len(job.unanswered_read_seqs),
                  "unanswered_token_renewals": len(job.unanswered_renew_seqs)},
        "custody": {step.step: step.present for step in story.steps} if story else {},
        "custody_steps": {step.step: _custody_step(step) for step in story.steps} if story else {},
        "custody_shared": shared,
        "counts": dict(job.kind_counts),
        "events": events,
    }


def _custody_step(step: CustodyStep) -> dict[str, Any]:
    """One step of a job's story as a policy reads it: ``present``, ``not_reached`` (a job in progress at
    as_of has not got to it yet: not missing), the entries it rests on and those not counted for it."""
    return {"present": step.present, "not_reached": step.not_reached, "seqs": list(step.seqs),
            "detail": step.detail, "other_builds": list(step.other_builds), "unsigned": list(step.unsigned),
            "unpaired": list(step.unpaired)}


def artifact_inputs(ctx: Context) -> list[tuple[str, dict[str, Any], tuple[int, ...]]]:
    """(digest, input document, supporting seqs) for every artifact seen in CI events or attestations."""
    frame = ctx.frame
    users: dict[str, set[str]] = {}
    used_seqs: dict[str, list[int]] = {}
    ci = frame[(frame["source"] == "ci") & frame["artifact_digest"].notna()]
    for index, seq, digest in zip(ci.index, ci["seq"], ci["artifact_digest"]):
        users.setdefault(digest, set())
        used_seqs.setdefault(digest, []).append(int(seq))
        job = ctx.correlation.job.get(index)
        if job is not None:
            users[digest].add(str(job))
    attestations: dict[str, list[dict[str, Any]]] = {}
    for seq in frame.loc[frame["source"] == "attestations", "seq"]:
        event = ctx.table.events.get(int(seq), {})
        attrs = event.get("attrs") or {}
        for digest in attestation_digests(event):
            attestations.setdefault(digest, []).append({
                "seq": int(seq), "kind": event.get("kind"), "signer": attrs.get("signer"),
                "predicate_type": attrs.get("predicate_type"), "object_lock_mode": attrs.get("object_lock_mode"),
                "retain_until": attrs.get("retain_until"),
            })
    out = []
    from bundler.custody import job_sort_key

    for digest in sorted(set(users) | set(attestations)):
        found = attestations.get(digest, [])
        # Only a verified attestation attests: unsigned and invalid ones stay listed (with their kind)
        # but never make an artifact attested, as in the job input.
        signed = any(a["kind"] == "attestation.signed" for a in found)
        document = {
            "kind": "artifact",
            "artifact": {"digest": digest, "signed": signed, "attested": signed, "attestations": found},
            "jobs": sorted(users.get(digest, set()), key=job_sort_key),
        }
        seqs = tuple(sorted({*used_seqs.get(digest, []), *(a["seq"] for a in found)}))
        out.append((digest, document, seqs))
    return out


# -- evaluation ----------------------------------------------------------------------------


def _decide(rego: Interpreter, package: str, document: Mapping[str, Any]) -> tuple[bool, list[str]]:
    """(passed, reasons) for one input document. A document regopy cannot take (a lone surrogate in evidence
    text, which JSON parses but UTF-8 cannot encode) is a denial of that input, not a crash (fail closed)."""
    try:
        rego.set_input(Input(document))
    except (ValueError, TypeError, OverflowError) as exc:
        return False, [f"the input could not be given to the policy ({type(exc).__name__}): the evidence holds "
                       "a value regopy cannot read"]
    output = rego.query(f"data.{package}")
    if not output.ok():
        return False, [f"policy error: {str(output).strip().splitlines()[0][:200] if str(output).strip() else 'error'}"]
    result = _json(output) or {}
    reasons: list[str] = []
    deny = result.get("deny") if isinstance(result, dict) else None
    if isinstance(deny, dict):
        reasons.extend(str(k) for k, v in sorted(deny.items()) if v)
    elif isinstance(deny, list):
        reasons.extend(str(x) for x in deny)
    elif deny is True:
        reasons.append("deny")
    defines_allow = isinstance(result, dict) and "allow" in result
    allowed = bool(result.get("allow") is True) if isinstance(result, dict) else False
    if reasons:
        return False, sorted(set(reasons))
    if defines_allow or not isinstance(deny, (dict, list, bool)):
        return allowed, ([] if allowed else ["allow is not true for this input"])
    return True, []


# Below this many input documents a policy is evaluated in this process; above, the
# documents are shared out over worker processes (each compiles the policy once).
PARALLEL_MIN_INPUTS = 256
_WORKER_POLICY: list[Any] = []


def _start_worker(policy: Policy) -> None:
    _WORKER_POLICY[:] = [policy, policy.interpreter()]


def _decide_in_worker(document: Mapping[str, Any]) -> tuple[bool, list[str]]:
    policy, rego = _WORKER_POLICY
    return _decide(rego, policy.package, document)


def decide_all(policy: Policy, documents: Sequence[Mapping[str, Any]], *,
               processes: int | None = None) -> list[tuple[bool, list[str]]]:
    """``_decide`` for every document, in order. Many documents go to *processes* forked
    workers (default: one per core); the decisions are the same either way."""
    import multiprocessing

    count = processes if processes is not None else (os.cpu_count() or 1)
    if count <= 1 or len(documents) < PARALLEL_MIN_INPUTS or "fork" not in multiprocessing.get_all_start_methods():
        rego = policy.interpreter()
        return [_decide(rego, policy.package, document) for document in documents]
    context = multiprocessing.get_context("fork")
    with context.Pool(count, initializer=_start_worker, initargs=(policy,)) as pool:
        return pool.map(_decide_in_worker, documents, chunksize=max(1, len(documents) // (4 * count)))


def evaluate_policies(policies: Sequence[Policy], ctx: Context, stories: Sequence[CustodyStory], *,
                      processes: int | None = None) -> list[CheckResult]:
    """One check per policy over every job (and/or artifact) input (see :func:`decide_all`
    for *processes*)."""
    story_of = {story.job_id: story for story in stories}
    job_docs = None
    artifact_docs = None
    results = []
    for policy in policies:
        subjects: list[tuple[str, str | None, dict[str, Any], tuple[int, ...]]] = []
        if "job" in policy.inputs:
            if job_docs is None:
                job_docs = [(f"job-{job.job_id}", job.job_id, job_input(ctx, job, story_of.get(job.job_id)), job.seqs)
                            for job in ctx.jobs.values()]
            subjects.extend(job_docs)
        if "artifact" in policy.inputs:
            if artifact_docs is None:
                artifact_docs = [(f"artifact-{d}", None, doc, seqs) for d, doc, seqs in artifact_inputs(ctx)]
            subjects.extend(artifact_docs)
        check = f"policy:{policy.name}"
        title = f"Rego policy {policy.name} ({policy.package})"
        if not subjects:
            results.append(CheckResult(check, title, policy.controls, NOT_ASSESSED,
                                       f"no {' or '.join(policy.inputs)} inputs in the period", kind="policy"))
            continue
        findings = []
        passed_seqs: list[int] = []
        passed = 0
        decisions = decide_all(policy, [document for _, _, document, _ in subjects], processes=processes)
        for (subject, job_id, document, seqs), (ok, reasons) in zip(subjects, decisions):
            if ok:
                passed += 1
                passed_seqs.extend(seqs)
                continue
            findings.append(Finding(
                id=f"{check}:{subject}", check=check, title=f"Policy {policy.name} denies {subject}",
                description=f"{Path(policy.path).name}: {'; '.join(reasons)}", controls=policy.controls, seqs=seqs,
                job_id=job_id))
        cited = tuple(sorted(set(passed_seqs)))[: ctx.config.cite_limit]
        summary = f"{passed} of {len(subjects)} input(s) allowed by {policy.name}"
        observation = Observation(f"{check}:evaluated", check, f"Evaluated {policy.name}", summary + ".",
                                  policy.controls, cited)
        seqs = tuple(sorted({*cited, *(s for f in findings for s in f.seqs)}))
        results.append(CheckResult(check, title, policy.controls, NOT_SATISFIED if findings else SATISFIED, summary,
                                   tuple(findings), (observation,), seqs, kind="policy"))
    return results
