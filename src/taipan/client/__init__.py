"""HTTP client for the Taipan management API; imports no server code."""

from taipan.client.api import UPLOAD_FILETYPES, TaipanClient, channel_path_url, probe

__all__ = ["UPLOAD_FILETYPES", "TaipanClient", "channel_path_url", "probe"]
