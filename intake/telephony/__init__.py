"""Calls: the Asterisk AMI bridge, call audio (AudioSocket, Twilio Media Streams) and speech recognition."""
