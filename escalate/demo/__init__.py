"""The offline demo: recorded GSM8K answers of a cheap and a strong model."""
