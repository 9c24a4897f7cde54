import pytest

from retab_mcp.base.config import MISSING_KEY_MESSAGE, Settings, SettingsError


def test_flag_beats_environment_which_beats_default() -> None:
    env = {"RETAB_API_BASE_URL": "https://env.example", "RETAB_MCP_MAX_WAIT_S": "30"}
    settings = Settings.load(env, base_url="https://flag.example")
    assert settings.base_url == "https://flag.example"
    assert settings.max_wait_s == 30
    assert settings.read_timeout_s == Settings().read_timeout_s


def test_unset_flags_do_not_override_environment() -> None:
    settings = Settings.load({"RETAB_API_KEY": "sk_test_x"}, api_key=None)
    assert settings.api_key == "sk_test_x"


@pytest.mark.parametrize("url", ["https://api.retab.com/v1", "https://api.retab.com/v1/", "https://api.retab.com/"])
def test_base_url_tolerates_trailing_v1_and_slash(url: str) -> None:
    assert Settings(base_url=url).base_url == "https://api.retab.com"


def test_a_non_number_in_the_environment_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="RETAB_MCP_MAX_WAIT_S"):
        Settings.load({"RETAB_MCP_MAX_WAIT_S": "soon"})


@pytest.mark.parametrize(
    "bad", [{"max_wait_s": 0}, {"read_timeout_s": -1}, {"max_retries": -1}, {"base_url": "ftp://x"}]
)
def test_unusable_values_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(SettingsError):
        Settings(**bad)  # type: ignore[arg-type]


def test_repr_never_shows_the_key() -> None:
    settings = Settings(api_key="sk_live_supersecret")
    assert "supersecret" not in repr(settings)
    assert "api_key=set" in repr(settings)


def test_missing_key_message_says_where_to_put_the_key() -> None:
    assert "RETAB_API_KEY" in MISSING_KEY_MESSAGE
    assert "`env` block" in MISSING_KEY_MESSAGE
