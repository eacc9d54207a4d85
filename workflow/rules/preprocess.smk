# Stage: preprocess (rules added by its issue)
