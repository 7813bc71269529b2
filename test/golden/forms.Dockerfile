# syntax=docker/dockerfile:1
# check=skip=CopyRelativeDestination
FROM busybox AS Data
RUN mkdir /out && echo data > /out/d.txt

FROM busybox
COPY --parents pkg/**/package.json src/./lib/*.js /app/
COPY --link --chown=1000:root conf/ /etc/app/
COPY --chmod=u+x,go-w tool.sh /usr/local/bin/tool
WORKDIR /mnt
RUN --mount=from=data,source=/out cat d.txt
RUN --security=insecure [ -w /sys ] && echo writable
ENV TOKEN_VALUE=x
CMD echo ${TOKEN_VALUE}
