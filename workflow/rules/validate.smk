# Stage: validate (rules added by its issue)
