"""Data layer: SoccerNet ingest, synthetic games, Parquet feature tables, windows."""
