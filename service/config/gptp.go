package config

import "time"

// ptpProfiles are the values of a PTP port's `profile` key.
var ptpProfiles = []string{"default", "gptp", "automotive"}

var ptpRoles = []string{"grandmaster", "slave"}

// ptpProfile reads `profile` (ptpCommon's hook) and, for "gptp", sets
// 802.1AS's transport and delay mechanism where the file does not.
func (d *decoder) ptpProfile(t *table, c *PTPCommon) {
	t.seconds("neighbor-prop-delay-thresh", &c.NeighborPropDelayThresh)
	var s string
	if !t.str("profile", &s) {
		return
	}
	v, err := parseEnum("profile", s, ptpProfiles)
	if err != nil {
		d.errorf(t.key("profile"), "%s", err.Error())
		return
	}
	c.Profile = v
	if v != "gptp" && v != "automotive" {
		return
	}
	if _, set := t.m["transport"]; !set {
		c.Transport = "ethernet"
	}
	if _, set := t.m["delay-mechanism"]; !set {
		c.DelayMechanism = "p2p"
	}
}

// gptpPortDefaults gives a gPTP [[ptp-port]] 802.1AS's intervals where
// the file sets none (Announce 1 s, Sync 1/8 s, Pdelay_Req 1 s).
func (d *decoder) gptpPortDefaults(t *table, p *PTPPortConfig) {
	var role string
	if t.str("role", &role) {
		if v, err := parseEnum("role", role, ptpRoles); err != nil {
			d.errorf(t.key("role"), "%s", err.Error())
		} else {
			p.Role = v
		}
	}
	if p.Profile != "gptp" && p.Profile != "automotive" {
		return
	}
	if _, set := t.m["announce-interval"]; !set {
		p.AnnounceInterval = 0
	}
	if _, set := t.m["sync-interval"]; !set {
		p.SyncInterval = -3
	}
}

// gptpValidate: 802.1AS runs over Ethernet with the peer delay mechanism.
func (v *validator) gptpValidate(key string, c *PTPCommon) {
	if c.Profile != "gptp" && c.Profile != "automotive" {
		if c.NeighborPropDelayThresh != 0 {
			v.errorf(key+".neighbor-prop-delay-thresh", "only with profile = \"gptp\" or \"automotive\" (802.1AS's asCapable rule)")
		}
		return
	}
	if c.NeighborPropDelayThresh < 0 || c.NeighborPropDelayThresh > time.Second {
		v.errorf(key+".neighbor-prop-delay-thresh", "must be above 0 and at most 1 s (got %s)", secs(c.NeighborPropDelayThresh))
	}
	if c.Transport != "ethernet" {
		v.errorf(key+".transport", "profile %q (802.1AS) runs over Ethernet only (got %q)", c.Profile, c.Transport)
	}
	if c.DelayMechanism != "p2p" {
		v.errorf(key+".delay-mechanism", "profile %q (802.1AS) uses the peer delay mechanism, \"p2p\" (got %q)", c.Profile, c.DelayMechanism)
	}
}

// roleValidate: the automotive profile's static role, on a [[ptp-port]]
// (a [[source]] is a slave already).
func (v *validator) roleValidate(key string, p *PTPPortConfig) {
	switch {
	case p.Profile == "automotive" && p.Role == "":
		v.errorf(key+".role", "missing: profile \"automotive\" has no BMCA, give the port its role (\"grandmaster\" or \"slave\")")
	case p.Profile != "automotive" && p.Role != "":
		v.errorf(key+".role", "only with profile = \"automotive\" (other profiles choose roles with the BMCA)")
	}
}
