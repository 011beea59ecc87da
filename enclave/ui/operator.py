"""Platform page (operators listed in ENCLAVE_OPERATORS): usage figures, quota
consumption and open alert counts of every tenant. No tenant content, no user names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st

from enclave.errors import EnclaveError
from enclave.identity import Principal
from enclave.ui.usage import CHARTS, progress
from enclave.usage import platform_quotas, platform_usage
from enclave.workspace import Workspace


def page(ws: Workspace, principal: Principal) -> None:
    st.header("Platform")
    try:
        days = st.selectbox("Period", [7, 30, 90], index=1, format_func=lambda d: f"{d} days")
        rows = platform_usage(ws, principal, datetime.now(UTC) - timedelta(days=days))
        quotas = platform_quotas(ws, principal)
    except EnclaveError as e:
        st.error(str(e))
        return
    if rows:
        df = pd.DataFrame(rows)
        df["day"] = pd.to_datetime(df["day"])
        for tab, (title, column) in zip(st.tabs(list(CHARTS)), CHARTS.items(), strict=True):
            with tab:
                st.bar_chart(df.pivot_table(index="day", columns="tenant", values=column,
                                            aggfunc="sum"), y_label=title)
        totals = df.groupby("tenant").agg(turns=("turns", "sum"), tokens=("tokens", "sum"),
                                          cost_usd=("cost_usd", "sum"),
                                          refusals=("refusals", "sum"),
                                          errors=("errors", "sum"),
                                          open_alerts=("open_alerts", "max"))
        st.dataframe(totals)
    else:
        st.caption("No usage in this period.")
    st.subheader("Tenant limits")
    for slug, consumption in quotas.items():
        st.markdown(f"**{slug}**")
        progress(consumption)
