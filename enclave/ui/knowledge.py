"""Knowledge page (editors and admins): upload documents, see and manage them, and try
retrieval. The workspace refuses everyone else, whatever the navigation shows."""

from __future__ import annotations

import streamlit as st

from enclave.errors import EnclaveError
from enclave.identity import Principal
from enclave.knowledge.service import KnowledgeBase, Upload
from enclave.tenants import Tenant
from enclave.ui import branding
from enclave.ui.session import set_state, state
from enclave.workspace import Workspace

STATUS_ICON = {"added": ":material/check_circle:", "replaced": ":material/autorenew:",
               "unchanged": ":material/info:", "duplicate": ":material/content_copy:",
               "removed": ":material/delete:", "rejected": ":material/error:"}


def _upload(kb: KnowledgeBase, principal: Principal) -> None:
    st.subheader("Upload")
    round_ = state(principal, "kb-upload-round", 0)
    files = st.file_uploader("Documents (PDF, DOCX, HTML, Markdown, text, CSV)",
                             accept_multiple_files=True, key=f"kb-files-{round_}")
    tags = st.text_input("Tags (comma-separated, optional)", key=f"kb-tags-{round_}")
    if not st.button("Add to knowledge", type="primary", disabled=not files):
        for line in state(principal, "kb-results", []):
            status, message = line
            (st.error if status == "rejected" else st.info)(message, icon=STATUS_ICON[status])
        return
    bar = st.progress(0.0, text="Reading files...")

    def step(done: int, total: int, name: str) -> None:
        bar.progress(done / total, text=f"{done}/{total} · {name}")

    results = kb.add(principal, [Upload(f.name, f.getvalue()) for f in files or []],
                     tags.split(","), step)
    set_state(principal, "kb-results", [(r.status, r.message) for r in results])
    set_state(principal, "kb-upload-round", round_ + 1)
    st.rerun()


def _documents(kb: KnowledgeBase, principal: Principal) -> None:
    docs = kb.documents()
    st.subheader(f"Documents ({len(docs)})")
    if not docs:
        st.caption("No documents yet.")
        return
    st.dataframe([{"Title": d.title, "File": d.name, "Type": d.kind,
                   "Size (KB)": round(d.size_bytes / 1024, 1), "Chunks": d.chunk_count,
                   "Tags": ", ".join(d.tags), "Uploaded by": d.uploaded_by,
                   "When": d.uploaded_at.strftime("%Y-%m-%d %H:%M")} for d in docs],
                 hide_index=True, use_container_width=True)
    by_id = {d.id: d for d in docs}
    chosen = st.selectbox("Manage a document", list(by_id),
                          format_func=lambda i: f"{by_id[i].title} ({by_id[i].name})")
    doc = by_id[chosen]
    new_tags = st.text_input("Tags", value=", ".join(doc.tags), key=f"kb-retag-{doc.id}")
    retag, delete = st.columns(2)
    if retag.button("Save tags", key="kb-save-tags"):
        kb.retag(principal, doc.id, new_tags.split(","))
        st.rerun()
    if delete.button("Delete document", key="kb-delete", type="primary"):
        kb.remove(principal, doc.id)
        set_state(principal, "kb-results", [("removed", f"{doc.name}: removed.")])
        st.rerun()


def _search(kb: KnowledgeBase) -> None:
    st.subheader("Try retrieval")
    query = st.text_input("Search the knowledge base", key="kb-search")
    if not query:
        return
    hits = kb.search(query)
    if not hits:
        st.caption("Nothing relevant found.")
    for n, hit in enumerate(hits, 1):
        where = f" · {hit.where}" if hit.where else ""
        with st.expander(f"{n}. {hit.title}{where} · score {hit.score:.4f} · similarity "
                         f"{hit.similarity:.2f}"):
            st.caption(f"chunk {hit.chunk_id}")
            st.text(hit.text)


def page(ws: Workspace, tenant: Tenant, principal: Principal) -> None:
    branding.header(tenant)
    st.header("Knowledge")
    try:
        kb = ws.knowledge(principal)
        _upload(kb, principal)
        _documents(kb, principal)
        _search(kb)
    except EnclaveError as e:
        st.error(str(e))
