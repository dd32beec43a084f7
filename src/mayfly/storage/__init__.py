"""Storage: tables, migrations, blobs. Imports only settings, model and errors."""
