# Image of the MLflow tracking server on the head (container avspot-mlflow), built there by
# cluster.yaml's head_setup_commands with dist/ as the build context. It is the node's Ray image (already
# pulled) plus mlflow[auth] (basic auth), boto3 (S3 artifacts, SSM) and psycopg2 (RDS Postgres) at the
# versions pinned in constraints.txt: the server runs the MLflow version the clients run, and a docker
# restart needs no network.
FROM rayproject/ray:2.60.0-py311-gpu
COPY constraints.txt /home/ray/avspot-mlflow/constraints.txt
COPY cluster/mlflow_server.sh /home/ray/avspot-mlflow/mlflow_server.sh
RUN pip install --no-cache-dir --constraint /home/ray/avspot-mlflow/constraints.txt \
    "mlflow[auth]" boto3 psycopg2-binary
ENTRYPOINT ["bash", "/home/ray/avspot-mlflow/mlflow_server.sh"]
