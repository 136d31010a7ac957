#!/usr/bin/env bash
IO=poll
source "$(dirname "$0")/transfer_cases.sh"
