"""The C{twistd scep} and C{twistd scep-worker} plugins."""

from twisted.application.service import ServiceMaker

scep = ServiceMaker(
    "scep", "scep.front.tap", "SCEP server: the HTTP front and its signing workers", "scep"
)
scep_worker = ServiceMaker(
    "scep-worker", "scep.authority.tap", "SCEP authority worker alone (holds the CA keys)", "scep-worker"
)
