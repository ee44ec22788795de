"""A training corpus in local files, streamed: any size in bounded memory.

``path`` is a TSV file, or the prefix of ``path.<src_lang>``/``path.<tgt_lang>``.
Evaluation splits the config does not give are held out of it by a seeded hash of
the source sentence (see ``readers.held_out_split``): one pass finds them, and they
are cached under the corpus fingerprint so that later starts do not read it again.
"""

import dataclasses
import functools
import hashlib
import json
import os
from collections.abc import Iterator

from s2s_jax.data import readers
from s2s_jax.data.readers import Pairs
from s2s_jax.runtime.atomic_files import write_atomically

# The evaluation splits a corpus file can stand in for, in the order they are held out.
HELD_OUT_SPLITS = ("validation", "test")


def corpus_paths(path: str, src_lang: str, tgt_lang: str) -> list[str]:
    """[path] for a TSV file, else the two aligned files."""
    src, tgt = f"{path}.{src_lang}", f"{path}.{tgt_lang}"
    if not os.path.isfile(path) and (os.path.exists(src) or os.path.exists(tgt)):
        return [src, tgt]
    return [path]


def iter_pairs(paths: list[str]) -> Iterator[tuple[str, str]]:
    return readers.iter_tsv(paths[0]) if len(paths) == 1 else readers.iter_aligned(*paths)


def read_pairs(path: str, src_lang: str, tgt_lang: str) -> Pairs:
    """Every pair of a corpus given by path (empty sides kept: evaluation data)."""
    return list(iter_pairs(corpus_paths(path, src_lang, tgt_lang)))


def files_digest(paths: list[str], cache_dir: str) -> str:
    """A digest of the files' bytes (about a second a gigabyte), remembered in
    ``cache_dir`` under each file's path, size, modification time and inode, so that a
    restart does not read the corpus again, and a changed file is read anew."""
    stats = []
    for path in paths:
        with readers.open_binary(path) as f:
            st = os.fstat(f.fileno())
        stats.append((os.path.abspath(path), st.st_size, st.st_mtime_ns, st.st_ino))
    remembered = os.path.join(
        cache_dir, "digest_" + hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:16]
    )
    if os.path.exists(remembered):
        with open(remembered, encoding="utf-8") as f:
            return f.read()
    digest = hashlib.blake2b(digest_size=16)
    for path in paths:
        with readers.open_binary(path) as f:
            while block := f.read(readers.BLOCK_BYTES):
                digest.update(block)
        digest.update(b"\0")
    os.makedirs(cache_dir, exist_ok=True)
    write_atomically(remembered, digest.hexdigest())
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class CorpusFile:
    """A training corpus file and the evaluation splits held out of it.

    Attributes:
      paths: see ``corpus_paths``.
      held_out: the splits held out of it, a subset of HELD_OUT_SPLITS.
      fraction: the expected share of pairs each held-out split takes.
      seed: split s in HELD_OUT_SPLITS is drawn with seed + its position there.
      cache_dir: where the files' digest and the held-out splits are kept.
    """

    paths: list[str]
    held_out: tuple[str, ...]
    fraction: float
    seed: int
    cache_dir: str

    @functools.cached_property
    def fingerprint(self) -> str:
        """Identifies the training pairs: the files' bytes and what is held out."""
        return (
            f"files {files_digest(self.paths, self.cache_dir)} held out "
            f"{list(self.held_out)} {self.fraction} seed {self.seed}"
        )

    def _split_of(self, source: str) -> str | None:
        for offset, split in enumerate(HELD_OUT_SPLITS):
            if (
                split in self.held_out
                and readers.unit_hash(self.seed + offset, source) < self.fraction
            ):
                return split
        return None

    def train_pairs(self) -> Iterator[tuple[str, str]]:
        """The pairs not held out, in file order."""
        if not self.held_out:
            yield from iter_pairs(self.paths)
            return
        for pair in iter_pairs(self.paths):
            if self._split_of(pair[0]) is None:
                yield pair

    def held_out_pairs(self) -> dict[str, Pairs]:
        """The held-out splits, from ``cache_dir`` or one pass over the files."""
        digest = hashlib.sha256(self.fingerprint.encode()).hexdigest()[:16]
        path = os.path.join(self.cache_dir, f"held_out_{digest}.json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                return {
                    split: [tuple(pair) for pair in pairs] for split, pairs in json.load(f).items()
                }
        splits: dict[str, Pairs] = {split: [] for split in self.held_out}
        for pair in iter_pairs(self.paths):
            if (split := self._split_of(pair[0])) is not None:
                splits[split].append(pair)
        os.makedirs(self.cache_dir, exist_ok=True)
        write_atomically(path, json.dumps(splits, ensure_ascii=False))
        return splits
