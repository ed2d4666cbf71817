"""Resolving repo listings to files: layouts, quant matching, choices.  Pure functions."""

from __future__ import annotations

import hashlib

import pytest

from localchat.engine.gguf_files import group_gguf_files, joined_name, pick_group
from localchat.errors import ModelNotFound
from localchat.gguf.quants import classify_gguf_path, quant_in_stem
from localchat.hub import RemoteFile
from localchat.hub.verify import ExpectedDigest


def files(*paths: str, size: int = 100) -> list[RemoteFile]:
    return [RemoteFile(path=p, size_bytes=size, blob_id="0" * 40, sha256="1" * 64) for p in paths]


BARTOWSKI = files(
    "README.md",
    "Model-70B-Q4_K_M.gguf",
    "Model-70B-IQ4_XS.gguf",
    "Model-70B-Q5_K_M/Model-70B-Q5_K_M-00001-of-00002.gguf",
    "Model-70B-Q5_K_M/Model-70B-Q5_K_M-00002-of-00002.gguf",
    "Model-70B-Q8_0.gguf/Model-70B-Q8_0-00001-of-00002.gguf",
    "Model-70B-Q8_0.gguf/Model-70B-Q8_0-00002-of-00002.gguf",
    "Model-70B.imatrix",
    "mmproj-Model-f16.gguf",
)
LMSTUDIO = files(
    "Nemotron-70B-Q4_K_M.gguf",
    "Nemotron-70B-Q6_K-00001-of-00002.gguf",
    "Nemotron-70B-Q6_K-00002-of-00002.gguf",
)
MRADERMACHER = files(
    "Higgs-Llama-3-70B.Q2_K.gguf",
    "Higgs-Llama-3-70B.Q6_K.gguf.part1of2",
    "Higgs-Llama-3-70B.Q6_K.gguf.part2of2",
    "Higgs-Llama-3-70B.IQ4_XS.gguf",
)


def by_quant(listing: list[RemoteFile]) -> dict[str, tuple[str, tuple[str, ...]]]:
    return {g.quant: (g.layout, tuple(f.path for f in g.files)) for g in group_gguf_files(listing)}


def test_bartowski_layout_single_subfolder_and_dotgguf_folder() -> None:
    groups = by_quant(BARTOWSKI)
    assert set(groups) == {"Q4_K_M", "IQ4_XS", "Q5_K_M", "Q8_0"}  # no mmproj, no imatrix
    assert groups["Q4_K_M"] == ("single", ("Model-70B-Q4_K_M.gguf",))
    assert groups["Q5_K_M"][0] == "split"
    assert groups["Q5_K_M"][1][0].endswith("-00001-of-00002.gguf")
    assert groups["Q8_0"] == (
        "split",
        (
            "Model-70B-Q8_0.gguf/Model-70B-Q8_0-00001-of-00002.gguf",
            "Model-70B-Q8_0.gguf/Model-70B-Q8_0-00002-of-00002.gguf",
        ),
    )


def test_splits_at_root_and_parts_to_concatenate() -> None:
    assert by_quant(LMSTUDIO)["Q6_K"][0] == "split"
    groups = group_gguf_files(MRADERMACHER)
    q6 = next(g for g in groups if g.quant == "Q6_K")
    assert q6.layout == "parts"
    assert q6.local_paths == ("Higgs-Llama-3-70B.Q6_K.gguf",)
    assert q6.size_bytes == 200


def test_incomplete_split_set_is_left_out() -> None:
    listing = files("M-Q8_0-00001-of-00003.gguf", "M-Q8_0-00002-of-00003.gguf", "M-Q4_0.gguf")
    assert set(by_quant(listing)) == {"Q4_0"}


def test_split_parts_are_ordered_by_number() -> None:
    listing = files("M-Q8_0-00002-of-00002.gguf", "M-Q8_0-00001-of-00002.gguf")
    (group,) = group_gguf_files(listing)
    assert [f.path for f in group.files] == [
        "M-Q8_0-00001-of-00002.gguf",
        "M-Q8_0-00002-of-00002.gguf",
    ]


@pytest.mark.parametrize("wanted", ["q4_k_m", "Q4_K_M", "q4_K_m"])
def test_quant_match_is_case_insensitive(wanted: str) -> None:
    assert pick_group(group_gguf_files(BARTOWSKI), wanted, "o/r").quant == "Q4_K_M"


def test_lowercase_file_names() -> None:
    groups = by_quant(files("huozi3-q2_k.gguf", "huozi3-q4_0.gguf"))
    assert set(groups) == {"Q2_K", "Q4_0"}


def test_unknown_quant_lists_what_the_repo_has() -> None:
    with pytest.raises(ModelNotFound) as info:
        pick_group(group_gguf_files(BARTOWSKI), "Q3_K_S", "o/r")
    text = info.value.one_line()
    assert "Q3_K_S" in text and "Q4_K_M" in text and "Q8_0" in text


def test_ambiguous_quant_names_the_candidates_and_a_stem_picks_one() -> None:
    listing = files("Model-Q4_K_M.gguf", "Model-abliterated-Q4_K_M.gguf")
    groups = group_gguf_files(listing)
    with pytest.raises(ModelNotFound) as info:
        pick_group(groups, "Q4_K_M", "o/r")
    assert "Model-abliterated-Q4_K_M" in info.value.one_line()
    assert pick_group(groups, "model-abliterated-q4_k_m", "o/r").stem == (
        "Model-abliterated-Q4_K_M"
    )


def test_quant_in_stem_handles_common_names() -> None:
    assert quant_in_stem("Higgs-Llama-3-70B.Q6_K") == "Q6_K"
    assert quant_in_stem("Model.i1-IQ4_XS") == "IQ4_XS"
    assert quant_in_stem("Qwen2.5-0.5B-Instruct-Q4_K_M") == "Q4_K_M"
    assert quant_in_stem("gemma-3-UD-Q4_K_XL") == "UD-Q4_K_XL"
    assert quant_in_stem("model-bf16") == "BF16"
    assert quant_in_stem("Qwen2.5-0.5B-Instruct") is None


def test_classify_and_joined_name() -> None:
    assert classify_gguf_path("a/b-Q8_0-00002-of-00003.gguf") == ("a/b-Q8_0", "split", 2, 3)
    assert classify_gguf_path("x.Q6_K.gguf.part2of2") == ("x.Q6_K", "parts", 2, 2)
    assert classify_gguf_path("config.json") is None
    assert joined_name("dir/x.Q6_K.gguf.part1of2") == "dir/x.Q6_K.gguf"


def test_git_sha1_digest_matches_git_hash_object() -> None:
    data = b"hello world\n"
    expected = "3b18e512dba79e4c8300dd08aeb37f8e728b8dad"  # `git hash-object` of that text
    digest = ExpectedDigest("git-sha1", expected, len(data))
    hasher = digest.new_hasher()
    hasher.update(data)
    assert hasher.hexdigest() == expected
    assert ExpectedDigest("sha256", "", 0).new_hasher().name == hashlib.sha256().name
