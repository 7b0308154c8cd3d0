# The Docker image's edits to the shipped config.toml (applied at build time by the Dockerfile;
# checked by tests/config_shipped.rs): serve every interface on port 53 and the API on 8080, and
# keep everything poolguard writes in the /var/lib/poolguard volume, so a new container (an
# upgrade) keeps the store, API-created feeds, subscription copies and version history.
s|^listen = \["127.0.0.1:5353"\]|listen = ["0.0.0.0:53", "[::]:53"]|
s|^listen = "127.0.0.1:8080"|listen = "0.0.0.0:8080"|
s|^path = "data/poolguard.db"|path = "/var/lib/poolguard/poolguard.db"|
s|^feeds_dir = "blocklists"|feeds_dir = "/var/lib/poolguard/feeds"|
