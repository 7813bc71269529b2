# Three stages; the target (app) needs lib but not docs.
ARG BASE=busybox
FROM ${BASE} AS lib
WORKDIR /src
COPY lib/ .
RUN make lib

FROM ${BASE} AS docs
RUN make docs

FROM ${BASE} AS app
ENV MODE=release
COPY --from=lib /src/out /usr/lib/
CMD ["app"]
