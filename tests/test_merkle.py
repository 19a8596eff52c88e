"""RFC 9162 proofs: conformance with transparency-dev/merkle vectors, and our own generation."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from collector import merkle
from collector.merkle import (
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from tests.conftest import SHARED_DATA


def _vectors(kind: str) -> list[Path]:
    folder = SHARED_DATA / "merkle-testdata" / kind
    return sorted(folder.rglob("*.json")) if folder.is_dir() else []


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value) if value else b""


@pytest.mark.parametrize("path", _vectors("inclusion") or [None], ids=lambda p: p and str(p.relative_to(SHARED_DATA)))
def test_inclusion_vectors(path: Path | None) -> None:
    if path is None:
        pytest.skip("../shared/data/merkle-testdata absent: conformance vectors not available")
    case = json.loads(path.read_text())
    proof = [_b64(p) for p in case["proof"] or []]
    try:
        verify_inclusion(case["leafIdx"], case["treeSize"], _b64(case["leafHash"]), proof, _b64(case["root"]))
        failed = False
    except ProofError:
        failed = True
    assert failed == case["wantErr"], case["desc"]


@pytest.mark.parametrize("path", _vectors("consistency") or [None], ids=lambda p: p and str(p.relative_to(SHARED_DATA)))
def test_consistency_vectors(path: Path | None) -> None:
    if path is None:
        pytest.skip("../shared/data/merkle-testdata absent: conformance vectors not available")
    case = json.loads(path.read_text())
    proof = [_b64(p) for p in case["proof"] or []]
    try:
        verify_consistency(case["size1"], case["size2"], proof, _b64(case["root1"]), _b64(case["root2"]))
        failed = False
    except ProofError:
        failed = True
    assert failed == case["wantErr"], case["desc"]


def _naive_root(leaves: list[bytes]) -> bytes:
    """MTH straight from RFC 9162 §2.1.1, recursive."""
    if not leaves:
        return merkle.EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = merkle.split_point(len(leaves))
    return merkle.node_hash(_naive_root(leaves[:k]), _naive_root(leaves[k:]))


LEAVES = [leaf_hash(f"leaf {i}".encode()) for i in range(40)]


def _subtree(start: int, end: int) -> bytes:
    return _naive_root(LEAVES[start:end])


def test_rfc6962_known_roots() -> None:
    # RFC 6962 test tree (transparency-dev): the 8 inputs and the root of size 8
    inputs = [b"", b"\x00", b"\x10", b" !", b"01", b"@ABC", b"PQRSTUVW", b"`abcdefghijklmno"]
    root = root_from_leaf_hashes([leaf_hash(x) for x in inputs])
    assert root.hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    assert merkle.EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_incremental_root_equals_naive_root() -> None:
    for n in range(len(LEAVES) + 1):
        assert root_from_leaf_hashes(LEAVES[:n]) == _naive_root(LEAVES[:n])


def test_generated_proofs_verify_and_mutations_fail() -> None:
    for n in range(1, 34):
        root = _subtree(0, n)
        for i in range(n):
            proof = inclusion_proof(i, n, _subtree)
            verify_inclusion(i, n, LEAVES[i], proof, root)
            for j in range(len(proof)):
                bad = list(proof)
                bad[j] = bytes([bad[j][0] ^ 1]) + bad[j][1:]
                with pytest.raises(ProofError):
                    verify_inclusion(i, n, LEAVES[i], bad, root)
            with pytest.raises(ProofError):
                verify_inclusion(i, n, LEAVES[i], proof + [root], root)
            if proof:
                with pytest.raises(ProofError):
                    verify_inclusion(i, n, LEAVES[i], proof[:-1], root)
        for m in range(1, n + 1):
            proof = consistency_proof(m, n, _subtree)
            verify_consistency(m, n, proof, _subtree(0, m), root)
            if m < n:
                with pytest.raises(ProofError):
                    verify_consistency(m, n, proof, _subtree(0, m), _subtree(0, n - 1) if n > 1 else root[::-1])


def test_errors_carry_expected_and_calculated_roots() -> None:
    proof = inclusion_proof(3, 10, _subtree)
    wrong = _subtree(0, 9)
    with pytest.raises(ProofError) as info:
        verify_inclusion(3, 10, LEAVES[3], proof, wrong)
    assert info.value.expected == wrong
    assert info.value.calculated == _subtree(0, 10)
    assert wrong.hex() in str(info.value)
