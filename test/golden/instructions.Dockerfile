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
