# Image of the MLflow tracking server on the head (container avspot-mlflow), built and pushed by
# build_images.sh with dist/ (build_dist.sh) as the build context: a slim Python 3.11 (no CUDA, no Ray)
# plus mlflow[auth] (basic auth), boto3 (S3 artifacts, SSM) and psycopg2 (RDS Postgres) at the versions
# constraints.txt pins, so the server runs the MLflow version the clients run. A restart needs no
# network: the head pulls the image once.
FROM python:3.11-slim
RUN useradd --create-home --uid 1000 mlflow
COPY constraints.txt /opt/avspot-mlflow/constraints.txt
COPY BUILD_ID /opt/avspot-mlflow/BUILD_ID
COPY cluster/mlflow_server.sh /opt/avspot-mlflow/mlflow_server.sh
RUN pip install --no-cache-dir --constraint /opt/avspot-mlflow/constraints.txt \
    "mlflow[auth]" boto3 psycopg2-binary \
    && mlflow --version
USER mlflow
WORKDIR /home/mlflow
LABEL org.opencontainers.image.title="avspot-mlflow" org.opencontainers.image.source="scripts/cluster/mlflow.Dockerfile"
ENTRYPOINT ["bash", "/opt/avspot-mlflow/mlflow_server.sh"]
