"""Module path / version rules (golang.org/x/mod/module semantics)."""

import pytest

from gomirror_proxy import modpath


@pytest.mark.parametrize("path", [
    "github.com/gin-gonic/gin", "github.com/BurntSushi/toml", "gopkg.in/yaml.v3",
    "github.com/go-playground/validator/v10", "golang.org/x/text", "example.com/a~b/c_d",
    "git.internal.example/platform/corelib",
])
def test_valid_paths(path):
    modpath.check_path(path)
    assert modpath.unescape_path(modpath.escape_path(path)) == path


@pytest.mark.parametrize("path", [
    "", "nodot/x", "/github.com/x", "github.com/x/", "github.com//x",
    "github.com/../x", "github.com/./x", "github.com/.hidden", "github.com/x.",
    "Github.com/x", "-x.com/y", "github.com/x y", "github.com/x\x00y", "github.com/x%2e",
    "github.com/x/v1", "github.com/x/v0", "github.com/x/v01", "gopkg.in/yaml",
    "github.com/con/x", "github.com/x~1", "github.com/é", "a.com/" + "x" * 300,
])
def test_invalid_paths(path):
    with pytest.raises(modpath.InvalidPathError):
        modpath.check_path(path)


def test_escaping():
    assert modpath.escape_path("github.com/BurntSushi/toml") == "github.com/!burnt!sushi/toml"
    assert modpath.unescape_path("github.com/!burnt!sushi/toml") == "github.com/BurntSushi/toml"
    for bad in ("github.com/BurntSushi/toml", "github.com/!!x", "github.com/x!", "github.com/!1"):
        with pytest.raises(modpath.InvalidPathError):
            modpath.unescape_path(bad)
    assert modpath.escape_version("v1.0.0-RC1") == "v1.0.0-!r!c1"
    assert modpath.unescape_version("v1.0.0-!r!c1") == "v1.0.0-RC1"
    with pytest.raises(modpath.InvalidVersionError):
        modpath.unescape_version("v1.0.0-RC1")


@pytest.mark.parametrize("path,version", [
    ("github.com/gin-gonic/gin", "v1.9.1"),
    ("github.com/dgrijalva/jwt-go", "v3.2.0+incompatible"),
    ("github.com/chenzhuoyu/base64x", "v0.0.0-20221115062448-fe3a3abad311"),
    ("github.com/go-playground/validator/v10", "v10.14.0"),
    ("gopkg.in/yaml.v3", "v3.0.1"),
    ("example.com/m", "v1.0.0-rc.1"),
])
def test_valid_versions(path, version):
    modpath.check_version(path, version)


@pytest.mark.parametrize("path,version", [
    ("github.com/gin-gonic/gin", "v1.9"), ("github.com/gin-gonic/gin", "1.9.1"),
    ("github.com/gin-gonic/gin", "v01.9.1"), ("github.com/gin-gonic/gin", "v2.0.0"),
    ("github.com/gin-gonic/gin", "v1.0.0+incompatible"), ("github.com/gin-gonic/gin", "latest"),
    ("github.com/gin-gonic/gin", "v1.9.1+meta"), ("github.com/x/y/v10", "v9.0.0"),
    ("github.com/x/y/v2", "v2.0.0+incompatible"), ("gopkg.in/yaml.v3", "v2.0.0"),
])
def test_invalid_versions(path, version):
    with pytest.raises(modpath.InvalidVersionError):
        modpath.check_version(path, version)


def test_semver_order_and_pseudo():
    vs = ["v1.10.0", "v1.2.0", "v1.2.0-rc.1", "v1.2.0-beta.2", "v1.2.0-beta.11", "v0.9.0"]
    assert sorted(vs, key=modpath.semver_key) == [
        "v0.9.0", "v1.2.0-beta.2", "v1.2.0-beta.11", "v1.2.0-rc.1", "v1.2.0", "v1.10.0"]
    assert modpath.is_pseudo("v0.0.0-20221115062448-fe3a3abad311")
    assert modpath.is_pseudo("v1.2.4-0.20191109021931-daa7c04131f5")
    assert not modpath.is_pseudo("v1.2.0-rc.1")


@pytest.mark.parametrize("raw", ["/a/%2e%2e/b", "/a%00b", "/x%ff", "/a\\b"])
def test_decode_request_path_rejects_or_defuses(raw):
    try:
        s = modpath.decode_request_path(raw)
    except modpath.InvalidPathError:
        return
    # decoded dots are then caught by check_path
    with pytest.raises(modpath.InvalidPathError):
        modpath.check_path(s.lstrip("/"))
