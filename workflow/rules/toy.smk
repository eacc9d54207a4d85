# Stage: toy (rules added by its issue)
