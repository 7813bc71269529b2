# syntax=docker/dockerfile:1
FROM busybox
ARG VERSION=1.0
LABEL version=$VERSION
ENV A=1 B="two words"
USER app
WORKDIR /app
RUN --mount=type=cache,target=/cache,id=c1 --mount=type=secret,id=tok --network=none make
RUN <<EOF
echo heredoc
EOF
COPY --chown=app:app --chmod=644 <<EOF config.ini
key=$A
EOF
ADD --checksum=sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 https://example.com/empty.txt /downloads/
EXPOSE 8080 53/udp
VOLUME /data
HEALTHCHECK --interval=30s CMD wget -q localhost
STOPSIGNAL SIGINT
SHELL ["/bin/ash", "-c"]
ENTRYPOINT exec app
ONBUILD RUN echo child
