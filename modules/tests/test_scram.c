
/*
 * Copyright (C) gpugate authors
 *
 * Unit tests of SCRAM-SHA-256: the RFC 7677 test vector, a full exchange
 * with random nonces, and refusals.
 */


#include <string.h>

#include "gpugate_scram.h"
#include "tap.h"


int
main(void)
{
    int              n, i, rejected;
    char             user[80], cf[512], sf[512], cfin[512], sfin[512];
    char             bad[512];
    gpugate_scram_t  cli, srv;
    unsigned char    stored[32], server[32], salt[16];

    static const unsigned char  rfc_salt[] = {
        0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e,
        0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81
    };

    /* RFC 7677, section 3: user "user", password "pencil" */

    n = gpugate_scram_client_first(&cli, "user", "rOprNGfwEbeRWgbNEkqO", cf,
                                   sizeof(cf));
    tap_ok(n > 0 && strcmp(cf, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO") == 0,
           "RFC 7677 client-first");

    tap_ok(gpugate_scram_server_parse_first(&srv, cf, n, user,
                                            sizeof(user)) == 0
           && strcmp(user, "user") == 0, "server reads the user");

    n = gpugate_scram_server_first(&srv, rfc_salt, sizeof(rfc_salt), 4096,
                                   "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", sf,
                                   sizeof(sf));
    tap_ok(n > 0 && strcmp(sf, "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFI"
                           "lj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
                    == 0, "RFC 7677 server-first");

    n = gpugate_scram_client_final(&cli, sf, n, (unsigned char *) "pencil",
                                   6, cfin, sizeof(cfin));
    tap_ok(n > 0 && strcmp(cfin, "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2Ra"
                           "TCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9z"
                           "jfMHgsqmmiz7AndVQ=") == 0,
           "RFC 7677 client-final (proof)");

    tap_ok(gpugate_scram_verifier((unsigned char *) "pencil", 6, rfc_salt,
                                  sizeof(rfc_salt), 4096, stored, server)
           == 0, "verifier computed");

    tap_ok(gpugate_scram_server_final(&srv, cfin, n, stored, server, sfin,
                                      sizeof(sfin)) == 0
           && strcmp(sfin, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
              == 0, "RFC 7677 server-final (signature)");

    tap_ok(gpugate_scram_client_verify(&cli, sfin, strlen(sfin)) == 0,
           "client accepts the server's signature");

    /* a full exchange with random nonces and a user needing escapes */

    memset(salt, 7, sizeof(salt));
    gpugate_scram_verifier((unsigned char *) "tok-123", 7, salt,
                           sizeof(salt), 4096, stored, server);

    n = gpugate_scram_client_first(&cli, "gpu,host=1", NULL, cf, sizeof(cf));
    tap_ok(n > 0 && strstr(cf, "n=gpu=2Chost=3D1,r=") != NULL,
           "',' and '=' in names are escaped");
    tap_ok(gpugate_scram_server_parse_first(&srv, cf, n, user,
                                            sizeof(user)) == 0
           && strcmp(user, "gpu,host=1") == 0, "...and unescaped");
    n = gpugate_scram_server_first(&srv, salt, sizeof(salt), 4096, NULL, sf,
                                   sizeof(sf));
    n = gpugate_scram_client_final(&cli, sf, n, (unsigned char *) "tok-123",
                                   7, cfin, sizeof(cfin));
    tap_ok(n > 0 && gpugate_scram_server_final(&srv, cfin, n, stored, server,
                                               sfin, sizeof(sfin)) == 0
           && gpugate_scram_client_verify(&cli, sfin, strlen(sfin)) == 0,
           "random-nonce exchange proves both sides");

    /* wrong token: the server refuses, says e= */

    n = gpugate_scram_client_first(&cli, "agent", NULL, cf, sizeof(cf));
    gpugate_scram_server_parse_first(&srv, cf, n, user, sizeof(user));
    n = gpugate_scram_server_first(&srv, salt, sizeof(salt), 4096, NULL, sf,
                                   sizeof(sf));
    n = gpugate_scram_client_final(&cli, sf, n, (unsigned char *) "wrong", 5,
                                   cfin, sizeof(cfin));
    tap_ok(gpugate_scram_server_final(&srv, cfin, n, stored, server, sfin,
                                      sizeof(sfin)) != 0
           && strcmp(sfin, "e=invalid-proof") == 0, "wrong token refused");
    tap_ok(gpugate_scram_client_verify(&cli, sfin, strlen(sfin)) != 0,
           "the client does not take e= for success");

    /* a forged server: right nonce, wrong signature */

    tap_ok(gpugate_scram_client_verify(&cli, "v=6rriTRBi23WpRR/wtup+mMhUZUn"
                                       "/dB5nLTJRsjl95G4=", 46) != 0,
           "a server without the verifier is refused by the client");

    /* tampering with any single byte of client-final is refused */

    n = gpugate_scram_client_first(&cli, "agent", NULL, cf, sizeof(cf));
    gpugate_scram_server_parse_first(&srv, cf, n, user, sizeof(user));
    n = gpugate_scram_server_first(&srv, salt, sizeof(salt), 4096, NULL, sf,
                                   sizeof(sf));
    n = gpugate_scram_client_final(&cli, sf, n, (unsigned char *) "tok-123",
                                   7, cfin, sizeof(cfin));

    rejected = 1;
    for (i = 0; i < n; i++) {
        gpugate_scram_t  copy = srv;

        memcpy(bad, cfin, n);
        bad[i] ^= 0x01;
        if (gpugate_scram_server_final(&copy, bad, n, stored, server, sfin,
                                       sizeof(sfin)) == 0)
        {
            rejected = 0;
        }
    }
    tap_ok(rejected, "every one-bit change of client-final is refused");

    rejected = 1;
    for (i = 0; i < n; i++) {
        gpugate_scram_t  copy = srv;

        if (gpugate_scram_server_final(&copy, cfin, i, stored, server, sfin,
                                       sizeof(sfin)) == 0)
        {
            rejected = 0;
        }
    }
    tap_ok(rejected, "every truncation of client-final is refused");

    {
        gpugate_scram_t  copy = srv;
        tap_ok(gpugate_scram_server_final(&copy, cfin, n, stored, server,
                                          sfin, sizeof(sfin)) == 0,
               "the untouched message still passes");
    }

    tap_ok(gpugate_scram_server_parse_first(&srv, "y,,n=a,r=0123456789abcdef",
                                            25, user, sizeof(user)) != 0,
           "channel-binding flags other than n are refused");
    tap_ok(gpugate_scram_server_parse_first(&srv, "n,a=x,n=a,r=0123456789ab"
                                            "cdef", 28, user, sizeof(user))
           != 0, "an authzid is refused");
    tap_ok(gpugate_scram_server_parse_first(&srv, "n,,n=a=2X,r=0123456789ab"
                                            "cdef", 28, user, sizeof(user))
           != 0, "a bad escape in the name is refused");
    tap_ok(gpugate_scram_server_parse_first(&srv, "n,,n=a,r=short", 14, user,
                                            sizeof(user)) != 0,
           "a short client nonce is refused");

    n = gpugate_scram_client_first(&cli, "agent", "0123456789abcdef", cf,
                                   sizeof(cf));
    tap_ok(gpugate_scram_client_final(&cli, "r=0123456789abcdefXY,s=W22ZaJ0S"
                                      "NY7soEsUEjb6gQ==,i=1000", 52,
                                      (unsigned char *) "t", 1, cfin,
                                      sizeof(cfin)) < 0,
           "the client refuses a low iteration count");
    tap_ok(gpugate_scram_client_final(&cli, "r=zzzz0123456789abcdef,s=W22ZaJ"
                                      "0SNY7soEsUEjb6gQ==,i=4096", 54,
                                      (unsigned char *) "t", 1, cfin,
                                      sizeof(cfin)) < 0,
           "the client refuses a nonce that does not extend its own");

    return tap_done();
}
