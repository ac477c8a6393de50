"""The embedded local stack: moto server on 127.0.0.1 plus the glue AWS would provide."""
