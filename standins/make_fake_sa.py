"""Write a fake service-account JSON whose token_uri points at fake_token_server.py.

usage: make_fake_sa.py OUT.json TOKEN_PORT [PROJECT]
Needs `cryptography` (a dependency of bqemulator, so .venv-bq has it).
"""

import json
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def main() -> None:
    out, port = sys.argv[1], sys.argv[2]
    project = sys.argv[3] if len(sys.argv) > 3 else "test-proj"
    key = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    with open(out, "w") as f:
        json.dump(
            {
                "type": "service_account",
                "project_id": project,
                "private_key_id": "fake",
                "private_key": key,
                "client_email": f"ci@{project}.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": f"http://127.0.0.1:{port}/token",
            },
            f,
        )


if __name__ == "__main__":
    main()
