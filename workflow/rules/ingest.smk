# Stage: ingest (rules added by its issue)
