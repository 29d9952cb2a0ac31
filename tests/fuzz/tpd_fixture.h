/*
 * tpd_fixture.h: the throw-away TPD recipient key (GUID
 * 10b94c15-7275-4c93-889f-a01de841477e) and ExportedTPD password that the
 * seeds in corpus/fuzz_tpd were made for. A test fixture, used nowhere else:
 * fuzz_tpd.c opens the seeds with it, tests/test_tpd.c checks that the
 * committed seeds still open with it and rewrites them on request.
 */
#ifndef LICENSOR_TESTS_FUZZ_TPD_FIXTURE_H
#define LICENSOR_TESTS_FUZZ_TPD_FIXTURE_H

#define FUZZ_TPD_GUID "10b94c15-7275-4c93-889f-a01de841477e"

static const char fuzz_recipient_key[] = "Guid: " FUZZ_TPD_GUID "\n"
					 "-----BEGIN PRIVATE KEY-----\n"
					 "MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCdtqr3MN3iLnFp\n"
					 "Onlioqtc+JaAogIAidmbbjsA5mKU7ZYNHJuYRd0UUSnI5Oigaizfzza0p3LJzqso\n"
					 "mOKabMoX27i/VvWXh6h8ABZMJevWNDCqTzfyt/Sq7Zx9djBxcBqErka7f6X36JKj\n"
					 "gJIY1mRVX7X3lTQLomGtzaeZTMQ/HJFy+Ps/rBwGcwewphktrro51v+jlUeQNvYv\n"
					 "0chtVchjnXGQXWe07oLDvM08Kj4JHGfCDjy0sgkriGYdmIrxN3FpRoTniFn2P8t0\n"
					 "gD7hQcOmVfvi6ab5RnOinUqVMG0SJ6mihdc84wPOId1uChCaxjhdO+OHazt3+A5y\n"
					 "4ETuvjotAgMBAAECggEAL+YKhoiQ2uDAEPVxaEN/R/03uFl7wi4bqNkRknRl/FUr\n"
					 "/U9y8gxF2KXNyvW6sP2OI2sLclJoymG6GdpU+BGSTyysL3B5pkvNH9vm6bmaprOz\n"
					 "FAZ7N3wnEsKXhIMgs1MYurMzSD68aU55Oq8Rr/ls/4DSAx+NbvsiL2cGP8jQ0Vmh\n"
					 "O16cBJoEZ4JSv50uddXkF9RLqXjssdDRxGhR4M9CT/WbVIKbOIobm1t/Yc92Lrjb\n"
					 "UVnCZ6Rj/cdy3CKZXn5au4PZyeI1vxDyrO9ZdzQ/A1VDScdcj0sPEjWKadCLB/cs\n"
					 "or1l/5LMgEhYgzmyDhrgBPJTqG+LfasvK2K5lk3JAQKBgQDcwSfLQIeCxOX9BNyL\n"
					 "PtWU18eDSJaSeY5IY8sL0bsDgMnmC8A681W9ujBqVMQAc0xXiQ1I94CaK+fKFsFh\n"
					 "CzPROSHPFwy7awcH9CyqLdZ2GvIGi0USCmDfe8dhUZDeE1MhWqnrsieIt2S7orpl\n"
					 "Kkgsm20zEriZMxzZP2Jz29UzawKBgQC25NrDtgK7zwvhfRMLoWqCol06iDWSyiNI\n"
					 "RsB7diL136M+1biMTeAf7No95Y/ppau3MOmmWEUKInbTixeBI3ID3kIR1KZtjMgs\n"
					 "5FA0uC6D+xQHDWwdSO8Q5OyXXnDITQBOU6prK1bmrRt5uPe6+p2OOpMbHwyDOxkw\n"
					 "y4tVsNxGxwKBgAQJC98tSMzdKI8dfaKV/XWBFEaUFxyKWE1+dYG7zb1cp1QrNtJd\n"
					 "DF4xfx0Se5q+gNDA0ptY2uL2loAdNl+9wq66aqHMfBEY/cHpdr+NovP5vh7cgOC5\n"
					 "i9fJ/XUL9qf4lnZvn9eNJCfdolvDt8CNq1AVb0OVvgYe5xIZlIUlqZoNAoGAbPUM\n"
					 "CxosqLxhRJVhukUQkgCub8djuy5nNJDJ7QNlMntn4nAqgJOIWRyeq89OHBDRqtId\n"
					 "8DaX8sCzb7VmbE20h+9qBvtbptn/Cxd9XNr5AzGaLdVmOlAP9E2dUVQ29m1BKGiZ\n"
					 "lzz7iXNJcguqsh7JrEjjCH5H0wprKHGqcYNqx1MCgYARQsTvggZ2No/CvC3teXfQ\n"
					 "Kvi5L9/AhmTl8Vy75DRjGvqIRkyz7O+RtDTpThAs7X0OjV0cn8WMx9CHL4X2xqPC\n"
					 "qA1kBmEzCjICpKpT1WV4l9YwcnE50feMzvy6fk87sD8wUVe6012Xu6Gta7ZSr/EX\n"
					 "KuklUgsDTB7381dBSqvKlw==\n"
					 "-----END PRIVATE KEY-----\n";

static const char fuzz_password[] = "uHE9hNGv06GgzbMm6ely963BSBCHod8V";

#endif
