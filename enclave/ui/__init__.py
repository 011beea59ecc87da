"""Streamlit page modules. Thin: they resolve the principal and call the workspace."""
