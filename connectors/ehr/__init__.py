"""EHR (FHIR R4) connector and its stub server."""

from connectors.ehr._connector import FhirEhrConnector

__all__ = ["FhirEhrConnector"]
