"""meteolens app: the command-line interface and the Streamlit dashboard."""
