"""Stand-in for the pip bootstrap script ansible-test downloads (get-pip.py).

ansible-test creates each sanity virtual environment without pip and then runs
~/.ansible/test/cache/get_pip_<version>.py in it; it fetches that script from
ci-files.testing.ansible.com, which these machines cannot reach. `make sanity-venvs`
installs this file there instead. It takes get-pip.py's arguments (pip options,
requirement specifiers, --no-setuptools, --no-wheel) and does the same job with what is
reachable: pip from the interpreter's own ensurepip wheel, then `pip install` of the
requested specifiers (pip==<version>) from the package index.
"""

import subprocess
import sys

OWN_FLAGS = {"--no-setuptools", "--no-wheel"}


def main(argv):
    pip_args = [arg for arg in argv if arg not in OWN_FLAGS]
    # In a child process: ensurepip.bootstrap() sets PIP_CONFIG_FILE=/dev/null in its own
    # environment, which would hide the machine's pip configuration (its CA bundle) from
    # the install below.
    subprocess.run([sys.executable, "-m", "ensurepip", "--upgrade"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", *pip_args], check=True)
    if "--no-setuptools" in argv:
        # ensurepip of Python 3.11 brings setuptools, which get-pip.py would leave out.
        subprocess.run(
            [sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", "setuptools"],
            check=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
