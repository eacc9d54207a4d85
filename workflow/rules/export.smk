# Stage: export (rules added by its issue)
