"""Keep a LlamaIndex vector store in sync with a folder, through an ``IngestionPipeline``.

The pipeline's docstore is the record of what is indexed: one entry per chunk (and figure),
keyed by the stable chunk id, with the chunk's metadata (``file_path``, ``doc_hash``). A sync
reads it, OCRs only new and changed files, and runs the pipeline with
``DocstoreStrategy.UPSERTS_AND_DELETE`` over the current chunks: the fresh ones, plus those of
unchanged files read back from the docstore. LlamaIndex then writes only chunks whose content
is new and deletes every chunk no current file has. An unchanged folder is not even passed to
the pipeline: no request, no write.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._errors import ConfigError
from ._folder_index import (
    SyncReport,
    crop_options,
    indexed_files,
    loaded_files,
    node_key,
    plan_sync,
    prune_crops,
    scan_folder,
)
from ._hash_embedding import DIM, hashed_vector

try:
    from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
    from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
    from llama_index.core.schema import (
        BaseNode,
        ImageNode,
        NodeRelationship,
        TextNode,
        TransformComponent,
    )
except ImportError as exc:  # pragma: no cover - exercised by test_optional_imports
    raise ImportError(
        "sync_folder_llamaindex needs LlamaIndex: pip install 'ocr-loaders[index]'"
    ) from exc


class HashingEmbedding(BaseEmbedding):
    """STAND-IN embedding (hashed bag of words), not a model: for tests, examples and CI.

    Deterministic and offline; texts sharing words are close. Use a real embedding model for
    real retrieval.
    """

    dim: int = DIM

    @classmethod
    def class_name(cls) -> str:
        return "OCRLoadersHashingEmbedding"

    def _get_query_embedding(self, query: str) -> Embedding:
        return hashed_vector(query, self.dim)

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return hashed_vector(query, self.dim)

    def _get_text_embedding(self, text: str) -> Embedding:
        return hashed_vector(text, self.dim)


class ChunkNodes(TransformComponent):
    """One store node per chunk: the same text, metadata and image, a UUID id (uuid5 of the
    chunk id, stable) and the chunk as its source document (``node.ref_doc_id``).

    Put it first in the pipeline's transformations. Stores such as Qdrant accept only UUIDs
    as ids; deleting by ``ref_doc_id`` (what the pipeline does for a changed or gone chunk)
    finds the node in every store.
    """

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        return [_store_node(node) for node in nodes]


def _store_node(node: BaseNode) -> BaseNode:
    shared: dict[str, Any] = {
        "id_": node_key(node.node_id),
        "text": node.get_content(),
        "metadata": dict(node.metadata),
        "excluded_embed_metadata_keys": list(node.excluded_embed_metadata_keys),
        "excluded_llm_metadata_keys": list(node.excluded_llm_metadata_keys),
        "relationships": {NodeRelationship.SOURCE: node.as_related_node_info()},
    }
    if isinstance(node, ImageNode):
        return ImageNode(
            image=node.image,
            image_path=node.image_path,
            image_url=node.image_url,
            image_mimetype=node.image_mimetype,
            **shared,
        )
    return TextNode(**shared)


def sync_folder_llamaindex(
    folder: str | Path,
    pipeline: IngestionPipeline,
    *,
    persist_dir: str | Path | None = None,
    **options: Any,
) -> SyncReport:
    """Bring ``pipeline``'s vector store in line with ``folder``; what it did.

    Args:
        folder: the folder to index (walked as a load walks it).
        pipeline: an ``IngestionPipeline`` with a ``docstore``, a ``vector_store`` and
            ``docstore_strategy=DocstoreStrategy.UPSERTS_AND_DELETE``; its transformations
            should start with :class:`ChunkNodes` and end with an embedding model. One
            pipeline (docstore and collection) per folder: chunks of other files are deleted.
        persist_dir: where the pipeline's docstore lives between runs (``pipeline.load`` /
            ``pipeline.persist``); loaded when present, written only when something changed.
        **options: for :class:`~ocr_loaders.DeepSeekOCRReader` (``base_url``, ``images``,
            ``chunk_size``, ...). Change them and the chunks change: run a full re-index.
    """
    if pipeline.docstore is None or pipeline.vector_store is None:
        raise ConfigError(
            "sync_folder_llamaindex needs a pipeline with a docstore and a vector store"
        )
    if pipeline.docstore_strategy != DocstoreStrategy.UPSERTS_AND_DELETE:
        raise ConfigError(
            "sync_folder_llamaindex needs docstore_strategy=DocstoreStrategy.UPSERTS_AND_DELETE "
            f"(got {pipeline.docstore_strategy.value})"
        )
    if persist_dir is not None and (Path(persist_dir) / "docstore.json").is_file():
        pipeline.load(str(persist_dir))
    docstore = pipeline.docstore
    assert docstore is not None
    before = docstore.docs
    state = scan_folder(folder)
    indexed = indexed_files(n.metadata for n in before.values())
    plan = plan_sync(state, indexed, one_per_content=True)
    if plan.unchanged:
        return SyncReport(plan)

    from .llamaindex import DeepSeekOCRReader

    fresh: list[BaseNode] = []
    stats = None
    if plan.to_load:
        reader = DeepSeekOCRReader(**crop_options(options, plan, state))
        fresh = list(reader.load_data(list(plan.to_load)))
        stats = reader.last_stats
    kept = set(plan.skipped)
    current = fresh + [n for n in before.values() if n.metadata.get("file_path") in kept]
    written = pipeline.run(nodes=current)
    after = docstore.get_all_document_hashes().values()
    if persist_dir is not None:
        pipeline.persist(str(persist_dir))
    prune_crops(options, (n.metadata for n in current))
    got = loaded_files(n.metadata for n in fresh)
    return SyncReport(
        plan,
        failed=tuple(p for p in plan.to_load if p not in got),
        written=len(written),
        deleted=len(set(before) - set(after)),
        stats=stats,
    )


__all__ = ["ChunkNodes", "HashingEmbedding", "sync_folder_llamaindex"]
