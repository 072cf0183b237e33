# gunicorn configuration for the orders API
import multiprocessing

bind = "127.0.0.1:8000"
workers = multiprocessing.cpu_count() * 2 + 1
worker_class = "gthread"
threads = 4
keepalive = 5
max_requests = 1000
max_requests_jitter = 50
timeout = 30
accesslog = "-"


def on_starting(server):
    server.log.info("starting")
