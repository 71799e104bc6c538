"""What cemkit reads of TS 32.298 records: record kinds, their context tags, and code tables.

The tag numbers below are those of the TS 32.298 ASN.1 modules as compiled by pycrate
(``pycrate_asn1dir.CDR``: CSChargingDataTypes, GPRSChargingDataTypes, GenericChargingDataTypes).
They are written out here so that the fast decoder does not have to import the 12 MB compiled
module; ``tests/test_threegpp_spec.py`` checks every number against the library.
"""

from __future__ import annotations

from typing import Final

#: Record kinds cemkit maps, in the order of their integer codes (index = code).
KINDS: Final[tuple[str, ...]] = (
    "moCallRecord",
    "mtCallRecord",
    "moSMSRecord",
    "mtSMSRecord",
    "sgsnPDPRecord",
    "sGWRecord",
    "pGWRecord",
    "ggsnPDPRecord",
    "egsnPDPRecord",
)
MO_CALL, MT_CALL, MO_SMS, MT_SMS, SGSN_PDP, SGW, PGW, GGSN_PDP, EGSN_PDP = range(len(KINDS))
VOICE_KINDS: Final = (MO_CALL, MT_CALL)
SMS_KINDS: Final = (MO_SMS, MT_SMS)
DATA_KINDS: Final = (SGSN_PDP, SGW, PGW, GGSN_PDP, EGSN_PDP)
#: Kinds of TS 32.298 releases before 8 (GGSN G-CDR and eGGSN eG-CDR), which the module pycrate
#: ships (a later release) no longer defines: only the fast decoder reads them. Their tags are
#: those of TS 32.298 V6.4.1 GPRSChargingDataTypes (GPRSCallEventRecord).
LEGACY_KINDS: Final = (GGSN_PDP, EGSN_PDP)

#: ASN.1 type of each kind (the alternative's type in CSRecord / GPRSRecord).
KIND_TYPES: Final[dict[str, str]] = {
    "moCallRecord": "MOCallRecord",
    "mtCallRecord": "MTCallRecord",
    "moSMSRecord": "MOSMSRecord",
    "mtSMSRecord": "MTSMSRecord",
    "sgsnPDPRecord": "SGSNPDPRecord",
    "sGWRecord": "SGWRecord",
    "pGWRecord": "PGWRecord",
    "ggsnPDPRecord": "GGSNPDPRecord",
    "egsnPDPRecord": "EGSNPDPRecord",
}

#: Context tag of each kind as an alternative of CSRecord (MSC) or GPRSRecord (packet core).
#: Tag 20 is sgsnPDPRecord in GPRSRecord (and mSCsRVCCRecord in CSRecord, not mapped).
#: Tags 21 and 28 are ggsnPDPRecord and egsnPDPRecord of GPRSCallEventRecord (Rel-6/7); 21 is
#: mMTRFRecord in today's CSRecord (not mapped).
KIND_TAGS: Final[dict[int, int]] = {0: MO_CALL, 1: MT_CALL, 6: MO_SMS, 7: MT_SMS, 20: SGSN_PDP,
                                    78: SGW, 79: PGW, 21: GGSN_PDP, 28: EGSN_PDP}  # fmt: skip

#: Names of the other alternatives of CSRecord / GPRSRecord, by context tag (for messages).
OTHER_RECORDS: Final[dict[int, str]] = {
    2: "roamingRecord", 3: "incGatewayRecord", 4: "outGatewayRecord", 5: "transitRecord",
    8: "moSMSIWRecord", 9: "mtSMSGWRecord", 10: "ssActionRecord", 11: "hlrIntRecord",
    12: "locUpdateHLRRecord", 13: "locUpdateVLRRecord", 14: "commonEquipRecord",
    15: "recTypeExtensions", 16: "termCAMELRecord", 17: "mtLCSRecord", 18: "moLCSRecord",
    19: "niLCSRecord", 22: "sgsnMMRecord/iCSRegisterRecord",
    23: "sgsnSMORecord", 24: "sgsnSMTRecord", 25: "sgsnMTLCSRecord", 26: "sgsnMOLCSRecord",
    27: "sgsnNILCSRecord", 76: "sgsnMBMSRecord", 77: "ggsnMBMSRecord", 86: "gwMBMSRecord",
    92: "tDFRecord", 95: "iPERecord", 96: "ePDGRecord", 97: "tWAGRecord",
}  # fmt: skip

#: Logical fields the mapping needs (index = slot of the fast decoder).
FIELDS: Final[tuple[str, ...]] = (
    "recordType", "servedIMSI", "servedIMEI", "servedMSISDN", "callingNumber", "calledNumber",
    "recordingEntity", "location", "startTime", "answerTime", "releaseTime", "duration",
    "cause", "diagnostics", "callReference", "sequenceNumber", "chargingID", "nodeAddress",
    "pdpAddress", "trafficVolumes", "serviceData", "rat", "userLocationInformation",
    "locationAreaCode", "cellIdentifier",
)  # fmt: skip
SLOT: Final[dict[str, int]] = {name: i for i, name in enumerate(FIELDS)}

#: Per kind: logical field → (ASN.1 component name, context tag) in TS 32.298.
COMPONENTS: Final[dict[str, dict[str, tuple[str, int]]]] = {
    "moCallRecord": {
        "recordType": ("recordType", 0), "servedIMSI": ("servedIMSI", 1),
        "servedIMEI": ("servedIMEI", 2), "servedMSISDN": ("servedMSISDN", 3),
        "callingNumber": ("callingNumber", 4), "calledNumber": ("calledNumber", 5),
        "recordingEntity": ("recordingEntity", 9), "location": ("location", 12),
        "startTime": ("seizureTime", 22), "answerTime": ("answerTime", 23),
        "releaseTime": ("releaseTime", 24), "duration": ("callDuration", 25),
        "cause": ("causeForTerm", 30), "diagnostics": ("diagnostics", 31),
        "callReference": ("callReference", 32), "sequenceNumber": ("sequenceNumber", 33),
        "rat": ("systemType", 61),
    },
    "mtCallRecord": {
        "recordType": ("recordType", 0), "servedIMSI": ("servedIMSI", 1),
        "servedIMEI": ("servedIMEI", 2), "servedMSISDN": ("servedMSISDN", 3),
        "callingNumber": ("callingNumber", 4), "recordingEntity": ("recordingEntity", 6),
        "location": ("location", 9), "startTime": ("seizureTime", 19),
        "answerTime": ("answerTime", 20), "releaseTime": ("releaseTime", 21),
        "duration": ("callDuration", 22), "cause": ("causeForTerm", 27),
        "diagnostics": ("diagnostics", 28), "callReference": ("callReference", 29),
        "sequenceNumber": ("sequenceNumber", 30), "rat": ("systemType", 46),
    },
    "moSMSRecord": {
        "recordType": ("recordType", 0), "servedIMSI": ("servedIMSI", 1),
        "servedIMEI": ("servedIMEI", 2), "servedMSISDN": ("servedMSISDN", 3),
        "recordingEntity": ("recordingEntity", 6), "location": ("location", 7),
        "startTime": ("originationTime", 9), "diagnostics": ("smsResult", 10),
        "calledNumber": ("destinationNumber", 12), "rat": ("systemType", 14),
    },
    "mtSMSRecord": {
        "recordType": ("recordType", 0), "servedIMSI": ("servedIMSI", 2),
        "servedIMEI": ("servedIMEI", 3), "servedMSISDN": ("servedMSISDN", 4),
        "recordingEntity": ("recordingEntity", 6), "location": ("location", 7),
        "startTime": ("deliveryTime", 8), "diagnostics": ("smsResult", 9),
        "rat": ("systemType", 11),
    },
    "sgsnPDPRecord": {
        "recordType": ("recordType", 0), "servedIMSI": ("servedIMSI", 3),
        "servedIMEI": ("servedIMEI", 4), "nodeAddress": ("sgsnAddress", 5),
        "locationAreaCode": ("locationAreaCode", 8), "cellIdentifier": ("cellIdentifier", 9),
        "chargingID": ("chargingID", 10), "pdpAddress": ("servedPDPAddress", 14),
        "trafficVolumes": ("listOfTrafficVolumes", 15), "startTime": ("recordOpeningTime", 16),
        "duration": ("duration", 17), "cause": ("causeForRecClosing", 19),
        "diagnostics": ("diagnostics", 20), "sequenceNumber": ("recordSequenceNumber", 21),
        "servedMSISDN": ("servedMSISDN", 27), "rat": ("rATType", 29),
    },
    "sGWRecord": {
        "recordType": ("recordType", 0), "servedIMSI": ("servedIMSI", 3),
        "nodeAddress": ("s-GWAddress", 4), "chargingID": ("chargingID", 5),
        "pdpAddress": ("servedPDPPDNAddress", 9), "trafficVolumes": ("listOfTrafficVolumes", 12),
        "startTime": ("recordOpeningTime", 13), "duration": ("duration", 14),
        "cause": ("causeForRecClosing", 15), "diagnostics": ("diagnostics", 16),
        "sequenceNumber": ("recordSequenceNumber", 17), "servedMSISDN": ("servedMSISDN", 22),
        "servedIMEI": ("servedIMEI", 29), "rat": ("rATType", 30),
        "userLocationInformation": ("userLocationInformation", 32),
    },
    "pGWRecord": {
        "recordType": ("recordType", 0), "servedIMSI": ("servedIMSI", 3),
        "nodeAddress": ("p-GWAddress", 4), "chargingID": ("chargingID", 5),
        "pdpAddress": ("servedPDPPDNAddress", 9), "trafficVolumes": ("listOfTrafficVolumes", 12),
        "startTime": ("recordOpeningTime", 13), "duration": ("duration", 14),
        "cause": ("causeForRecClosing", 15), "diagnostics": ("diagnostics", 16),
        "sequenceNumber": ("recordSequenceNumber", 17), "servedMSISDN": ("servedMSISDN", 22),
        "servedIMEI": ("servedIMEI", 29), "rat": ("rATType", 30),
        "userLocationInformation": ("userLocationInformation", 32),
        "serviceData": ("listOfServiceData", 34),
    },
}  # fmt: skip
_GGSN = {
    "recordType": ("recordType", 0), "servedIMSI": ("servedIMSI", 3),
    "nodeAddress": ("ggsnAddress", 4), "chargingID": ("chargingID", 5),
    "pdpAddress": ("servedPDPAddress", 9), "trafficVolumes": ("listOfTrafficVolumes", 12),
    "startTime": ("recordOpeningTime", 13), "duration": ("duration", 14),
    "cause": ("causeForRecClosing", 15), "diagnostics": ("diagnostics", 16),
    "sequenceNumber": ("recordSequenceNumber", 17), "servedMSISDN": ("servedMSISDN", 22),
    "servedIMEI": ("servedIMEISV", 29), "rat": ("rATType", 30),
    "userLocationInformation": ("userLocationInformation", 32),
}  # fmt: skip
COMPONENTS["ggsnPDPRecord"] = dict(_GGSN)
COMPONENTS["egsnPDPRecord"] = {**_GGSN, "serviceData": ("listOfServiceData", 34)}

#: Context tags each record type defines in TS 32.298 (inclusive ranges); any other tag is a
#: vendor extension: skipped by the standard decoder and listed in ``src_3gpp_unknown_tags``.
KNOWN_TAGS: Final[dict[str, tuple[tuple[int, int], ...]]] = {
    "moCallRecord": ((0, 77),),
    "mtCallRecord": ((0, 61),),
    "moSMSRecord": ((0, 15),),
    "mtSMSRecord": ((0, 13),),
    "sgsnPDPRecord": ((0, 1), (3, 39)),
    "sGWRecord": ((0, 0), (3, 9), (11, 25), (27, 27), (29, 32), (34, 44), (47, 57), (59, 64)),
    "pGWRecord": ((0, 0), (3, 9), (11, 25), (27, 47), (49, 62), (64, 73)),
    "ggsnPDPRecord": ((0, 1), (3, 9), (11, 27), (29, 33)),
    "egsnPDPRecord": ((0, 1), (3, 9), (11, 34)),
}

#: Uplink / downlink volume tags inside ChangeOfCharCondition (listOfTrafficVolumes) and
#: ChangeOfServiceCondition (listOfServiceData).
TRAFFIC_VOLUME_TAGS: Final = (3, 4)  # dataVolumeGPRSUplink, dataVolumeGPRSDownlink
SERVICE_DATA_VOLUME_TAGS: Final = (12, 13)  # datavolumeFBCUplink, datavolumeFBCDownlink
#: LocationAreaAndCell components.
LOCATION_TAGS: Final = (0, 1, 2)  # locationAreaCode, cellId, mCC-MNC

#: Diagnostics alternatives (context tag → name).
DIAGNOSTICS: Final[dict[int, str]] = {
    0: "gsm0408Cause", 1: "gsm0902MapErrorValue", 2: "itu-tQ767Cause",
    3: "networkSpecificCause", 4: "manufacturerSpecificCause", 5: "positionMethodFailureCause",
    6: "unauthorizedLCSClientCause", 7: "diameterResultCodeAndExperimentalResult",
}  # fmt: skip

#: CauseForTerm (MSC records).
CAUSE_FOR_TERM: Final[dict[int, str]] = {
    0: "normalRelease", 1: "partialRecord", 2: "partialRecordCallReestablishment",
    3: "unsuccessfulCallAttempt", 4: "abnormalRelease", 5: "cAMELInitCallRelease",
    52: "unauthorizedRequestingNetwork", 53: "unauthorizedLCSClient",
    54: "positionMethodFailure", 58: "unknownOrUnreachableLCSClient",
}  # fmt: skip
#: CauseForRecClosing (packet-core records).
CAUSE_FOR_REC_CLOSING: Final[dict[int, str]] = {
    0: "normalRelease", 1: "partialRecord", 4: "abnormalRelease", 5: "cAMELInitCallRelease",
    16: "volumeLimit", 17: "timeLimit", 18: "servingNodeChange", 19: "maxChangeCond",
    20: "managementIntervention", 21: "intraSGSNIntersystemChange", 22: "rATChange",
    23: "mSTimeZoneChange", 24: "sGSNPLMNIDChange", 25: "sGWChange", 26: "aPNAMBRChange",
    27: "mOExceptionDataCounterReceipt", 52: "unauthorizedRequestingNetwork",
    53: "unauthorizedLCSClient", 54: "positionMethodFailure",
    58: "unknownOrUnreachableLCSClient", 59: "listofDownstreamNodeChange",
}  # fmt: skip
#: Closing causes that end a session or call abnormally (both enumerations share the values).
ABNORMAL_CLOSING: Final[frozenset[int]] = frozenset({4})

#: RAT Type of TS 29.274 clause 8.17 (rATType of packet-core records) → canonical ``rat``.
RAT_TYPES: Final[dict[int, str]] = {
    1: "utran", 2: "geran", 3: "wlan", 4: "gan", 5: "utran", 6: "eutran", 7: "virtual",
    8: "eutran", 9: "eutran", 10: "nr",
}  # fmt: skip
#: systemType of MSC records (0 unknown, 1 iuUTRAN, 2 gERAN).
SYSTEM_TYPES: Final[dict[int, str]] = {1: "utran", 2: "geran"}
#: SystemType enumeration names (as pycrate decodes them) → values.
SYSTEM_TYPE_VALUES: Final[dict[str, int]] = {"unknown": 0, "iuUTRAN": 1, "gERAN": 2}
#: Values of the canonical ``rat`` column.
RATS: Final[tuple[str, ...]] = ("geran", "utran", "eutran", "nr", "wlan", "gan", "virtual")

#: TBCD filler digits (TS 29.002 TBCD-STRING; TS 24.008 table 10.5.118).
TBCD_DIGITS: Final = "0123456789*#abc"
#: Type of number (bits 7-5 of an AddressString's first octet) that means international.
TON_INTERNATIONAL: Final = 1
