# Stage: train (rules added by its issue)
