# Stage: generate (rules added by its issue)
