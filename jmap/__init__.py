"""The JMAP protocol layer (RFC 8620): session, request engine, standard methods, blobs."""
