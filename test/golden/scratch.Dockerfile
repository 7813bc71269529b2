FROM scratch
COPY hello /
ENV PATH=/
CMD ["/hello"]
