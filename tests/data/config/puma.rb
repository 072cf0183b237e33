# Puma configuration for the storefront
max_threads_count = ENV.fetch("RAILS_MAX_THREADS") { 5 }
threads max_threads_count, max_threads_count

port ENV.fetch("PORT") { 3000 }
bind "tcp://127.0.0.1:9292"
environment ENV.fetch("RAILS_ENV") { "production" }

workers 2
persistent_timeout 75  # above nginx's keepalive_timeout 60s

plugin :tmp_restart
